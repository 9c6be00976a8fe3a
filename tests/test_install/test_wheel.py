"""A regular install (a wheel, not the checkout) carries everything the commands need.

The wheel is built from a copy of the checkout's sources (so no stale ``build/`` of the checkout can leak files into
it, and nothing is written into the checkout), installed with ``pip install --target`` into a temporary folder, and
used from a directory outside the checkout with ``PYTHONPATH`` set to that folder only: the demo runs briefly and
every console script of ``pyproject.toml`` answers ``--help``.
"""
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow

#: what a source checkout holds beside the package that a wheel build must not see (VCS, environments, outputs)
NOT_SOURCES = ('.git', '.venv', 'tests', '__pycache__', '*.egg-info', 'build', 'dist', 'experiments', 'results',
               'tb_logger', 'datasets', 'demo_output*', '.pytest_cache')


def console_scripts():
    """The console script names that ``pyproject.toml`` declares (``[project.scripts]``)."""
    names = list(tomllib.loads((REPO_ROOT / 'pyproject.toml').read_text(encoding='utf-8'))['project']['scripts'])
    assert names, 'pyproject.toml declares no console scripts'
    return names


def _run(cmd, cwd):
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, f'{" ".join(cmd)}\n{done.stdout[-3000:]}{done.stderr[-3000:]}'


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """``(target, env)``: the wheel installed into ``target`` and an environment that imports only from there."""
    root = tmp_path_factory.mktemp('wheel')
    src, wheels, target = root / 'src', root / 'wheels', root / 'target'
    shutil.copytree(REPO_ROOT, src, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '-q']
    _run(pip + ['wheel', '--no-index', '--no-deps', '--no-build-isolation', '-w', str(wheels), str(src)], root)
    built = sorted(wheels.glob('srconvnet_plugin-*.whl'))
    assert len(built) == 1, built
    _run(pip + ['install', '--no-index', '--no-deps', '--target', str(target), str(built[0])], root)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(PYTHONPATH=str(target), OMP_NUM_THREADS='2')
    return target, env


def test_the_installed_package_is_imported_not_the_checkout(installed, tmp_path):
    target, env = installed
    done = subprocess.run([sys.executable, '-c', 'import srconvnet_plugin; print(srconvnet_plugin.__file__)'],
                          capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    imported = Path(done.stdout.strip()).resolve()
    assert imported == (target / 'srconvnet_plugin' / '__init__.py').resolve()
    assert REPO_ROOT.resolve() not in imported.parents
    assert (target / 'srconvnet_plugin' / 'demo_options' / 'train_SRConvNet_demo_x2.yml').is_file()
    assert (target / 'srconvnet' / 'engine' / 'network.py').is_file()  # the core travels in the same wheel


def test_every_console_script_is_installed_and_answers_help(installed, tmp_path):
    target, env = installed
    names = console_scripts()
    assert sorted(p.name for p in (target / 'bin').iterdir()) == sorted(names)
    # the scripts pip wrote (shebang: this interpreter), all at once: each one imports torch and basicsr
    procs = {name: subprocess.Popen([str(target / 'bin' / name), '--help'], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path) for name in names}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f'{name} --help: exit {proc.returncode}\n{err[-3000:]}'
        assert out.startswith(f'usage: {name} '), f'{name} --help printed:\n{out[:500]}'


def test_the_demo_runs_from_the_install(installed, tmp_path):
    target, env = installed
    done = subprocess.run([str(target / 'bin' / 'srconvnet-demo'), '--iters', '2', '--out', 'demo'],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / 'demo' / 'run_001'
    assert 'SRConvNet vs bicubic:' in done.stdout and 'after 2 iterations' in done.stdout
    assert (run / 'experiments' / 'SRConvNet_demo_x2' / 'models' / 'net_g_latest.pth').is_file()
    assert (run / 'metrics.csv').read_text().startswith('image,bicubic_psnr')
    # the run's option file is the packaged one with the demo's settings filled in
    assert 'total_iter: 2' in (run / 'train.yml').read_text()
