"""Packaging: the wheel ships configs and tools as ``anomaly_plugin/.mim`` (mim's layout).

The wheel is built offline from a copy of the sources (nothing is written into
the checkout) and installed into a fresh virtual environment that borrows the
dependencies of the running one through a ``.pth`` line: a plain path line adds
that ``site-packages`` without running its ``.pth`` files, so the editable
``anomaly_plugin`` of the running environment (an import hook installed by a
``.pth`` file) stays out, and ``import anomaly_plugin`` finds the installed copy.
pip installs with ``--target``, which never uninstalls anything elsewhere.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, make_mvtec, options_to_cli, tiny_ae_options

#: what a build of the project reads
SOURCES = ('anomaly_plugin', 'configs', 'tools', 'setup.py', 'setup.cfg', 'pyproject.toml',
           'MANIFEST.in', 'README.md', 'requirements.txt')
IGNORE = shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info', 'build', '.mim')
MIM = 'anomaly_plugin/.mim'


def _build_backend_missing():
    """Why a wheel cannot be built offline without build isolation, or None."""
    try:
        import setuptools
    except ImportError:
        return 'setuptools is not installed in this environment'
    version = tuple(int(p) for p in setuptools.__version__.split('.')[:2] if p.isdigit())
    if version < (64,):
        return f'setuptools {setuptools.__version__} < 64 (pyproject.toml needs >= 64)'
    if version < (70, 1):
        try:
            import wheel  # noqa: F401  (bdist_wheel before setuptools 70.1)
        except ImportError:
            return f'setuptools {setuptools.__version__} needs the wheel package, not installed'
    return None


def _run(cmd, cwd, env=None, timeout=300):
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _clean_env(**extra):
    """The environment without anything that would put the checkout on ``sys.path``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ('PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP')}
    env.update(OMP_NUM_THREADS='1', PIP_NO_INPUT='1', PIP_DISABLE_PIP_VERSION_CHECK='1',
               **extra)
    return env


def _files(root: Path, sub: str):
    """Relative paths of the files under ``root/sub``, caches left out."""
    return {p.relative_to(root).as_posix() for p in (root / sub).rglob('*')
            if p.is_file() and '__pycache__' not in p.parts and p.suffix != '.pyc'}


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """Sources copy, wheel, and a venv with the wheel installed (not editable)."""
    reason = _build_backend_missing()
    if reason:
        pytest.skip(f'cannot build the wheel offline: {reason}')
    tmp = tmp_path_factory.mktemp('packaging')
    src = tmp / 'src'
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=IGNORE)
        else:
            shutil.copy2(ROOT / name, src / name)
    dist = tmp / 'dist'
    _run([sys.executable, '-m', 'pip', 'wheel', src, '--no-deps', '--no-build-isolation',
          '--no-index', '-w', dist], cwd=tmp, env=_clean_env())
    wheels = sorted(dist.glob('anomaly_plugin-*.whl'))
    assert len(wheels) == 1, wheels

    venv = tmp / 'venv'
    _run([sys.executable, '-m', 'venv', '--without-pip', venv], cwd=tmp, env=_clean_env())
    python = venv / 'bin' / 'python'
    site = Path(_run([python, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                     cwd=tmp, env=_clean_env()).strip())
    _run([sys.executable, '-m', 'pip', 'install', '--no-deps', '--no-index', '--no-compile',
          '--target', site, wheels[0]], cwd=tmp, env=_clean_env())
    # the running environment's packages, without processing its .pth files
    deps = sysconfig.get_paths()['purelib']
    (site / 'zz_test_dependencies.pth').write_text(deps + '\n')
    work = tmp / 'work'  # outside the checkout
    work.mkdir()
    return dict(tmp=tmp, src=src, wheel=wheels[0], python=python, site=site,
                mim=site / MIM, work=work)


def test_wheel_ships_configs_tools_and_kernel_source(built):
    names = set(zipfile.ZipFile(built['wheel']).namelist())
    configs = {f'{MIM}/{p}' for p in _files(built['src'], 'configs')}
    tools = {f'{MIM}/{p}' for p in _files(built['src'], 'tools')}
    assert f'{MIM}/configs/patchcore/patchcore_mobilenetv2_mvtec.py' in configs
    assert f'{MIM}/tools/train.py' in tools and f'{MIM}/tools/dist_train.sh' in tools
    assert configs <= names and tools <= names
    shipped = {n for n in names if n.startswith(MIM + '/')}
    assert shipped == configs | tools  # nothing else, no caches
    assert 'anomaly_plugin/models/statistics/csrc/greedy_kcenter.cpp' in names
    assert not [n for n in names if '/csrc/build/' in n or n.endswith('.so')]


def test_sdist_holds_what_the_wheel_copies(built):
    out = built['tmp'] / 'sdist'
    name = _run([sys.executable, '-c', 'import sys; from setuptools import build_meta as b; '
                 'print(b.build_sdist(sys.argv[1]))', out], cwd=built['src'],
                env=_clean_env()).strip().splitlines()[-1]
    with tarfile.open(out / name) as tar:
        names = {n.split('/', 1)[1] for n in tar.getnames() if '/' in n}
    for path in ('setup.py', 'configs/ae/conv_ae_mvtec.py', 'configs/_base_/__init__.py',
                 'tools/train.py', 'tools/launch.sh',
                 'anomaly_plugin/models/statistics/csrc/greedy_kcenter.cpp'):
        assert path in names, path
    assert not [n for n in names if '.mim' in n or '__pycache__' in n]


def test_editable_build_links_mim_into_the_source_tree(built):
    """What ``pip install -e .`` (``make install``) runs: ``.mim`` links to the sources."""
    src = built['src']
    _run([sys.executable, '-c', 'import sys; from setuptools import build_meta as b; '
          'print(b.build_editable(sys.argv[1]))', built['tmp'] / 'editable'],
         cwd=src, env=_clean_env())
    for name in ('configs', 'tools'):
        link = src / MIM / name
        assert link.is_symlink(), link
        assert link.resolve() == (src / name).resolve()
    assert (src / MIM / 'configs' / 'ae' / 'conv_ae_mvtec.py').is_file()


def test_installed_package_loads_a_mim_config(built):
    config = built['mim'] / 'configs' / 'patchcore' / 'patchcore_mobilenetv2_mvtec.py'
    script = ('import sys, anomaly_plugin\n'
              'from mmengine.config import Config\n'
              'print(anomaly_plugin.__file__)\n'
              'cfg = Config.fromfile(sys.argv[1])\n'
              'print(cfg.model.type.__name__, cfg.model.backbone.type.__name__,\n'
              '      cfg.train_dataloader.dataset.type.__name__, cfg.img_size)\n')
    out = _run([built['python'], '-c', script, config], cwd=built['work'],
               env=_clean_env()).strip().splitlines()
    location = Path(out[0]).resolve()
    assert location == (built['site'] / 'anomaly_plugin' / '__init__.py').resolve()
    assert ROOT not in location.parents
    # read_base's relative imports (.._base_) resolved inside .mim/configs
    assert out[1] == 'PatchCore FeatureExtractor MVTecADDataset (256, 256)'


def test_mim_train_tool_trains_from_the_installed_package(built):
    data = make_mvtec(built['tmp'] / 'cat', size=32)
    work_dir = built['tmp'] / 'train'
    opts = tiny_ae_options(data, epochs=1)
    out = _run([built['python'], built['mim'] / 'tools' / 'train.py',
                built['mim'] / 'configs' / 'ae' / 'conv_ae_mvtec.py', '--work-dir', work_dir,
                '--no-validate', '--cfg-options', *options_to_cli(opts)],
               cwd=built['work'], env=_clean_env(), timeout=120)
    assert (work_dir / 'epoch_1.pth').is_file(), out[-2000:]
    # the config copied into the work dir is the installed one
    assert (work_dir / 'conv_ae_mvtec.py').is_file()
