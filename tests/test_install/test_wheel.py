"""A regular install (a wheel, not the checkout) carries everything the commands need.

The wheel is built once from a copy of the checkout's sources (so no stale ``build/`` of the checkout can leak files
into it, and nothing is written into the checkout) and installed twice:

* with ``pip install --target`` into a temporary folder, used from a directory outside the checkout with
  ``PYTHONPATH`` set to that folder only (this environment's packages: the toolbox is there): the demo runs briefly,
  every console script of ``pyproject.toml`` and every documented ``python -m`` module answers ``--help``, and the
  documented old import names work;
* into a new venv (no pip, no system site-packages) that sees only the core's dependencies (torch, numpy,
  safetensors and what they require, linked from this environment through a ``.pth`` file), as ``pip install .``
  leaves a model user: the core's commands work, and every command that needs what is not there (the toolbox,
  the ``infer`` extra) answers in one line how to install it, exit code 2, no traceback.
"""
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from conftest import REPO_ROOT

pytestmark = pytest.mark.slow

#: what a source checkout holds beside the package that a wheel build must not see (VCS, environments, outputs)
NOT_SOURCES = ('.git', '.venv', 'tests', '__pycache__', '*.egg-info', 'build', 'dist', 'experiments', 'results',
               'tb_logger', 'datasets', 'demo_output*', '.pytest_cache')


def console_scripts():
    """The console script names that ``pyproject.toml`` declares (``[project.scripts]``)."""
    names = list(pyproject()['scripts'])
    assert names, 'pyproject.toml declares no console scripts'
    return names


#: every documented ``python -m`` module (docs/installation.md, docs/inference.md, the README, 0.1's names)
DOCUMENTED_MODULES = ('srconvnet_plugin.train', 'srconvnet_plugin.test', 'srconvnet_plugin.infer',
                      'srconvnet_plugin.convert', 'srconvnet_plugin.demo', 'srconvnet_plugin.compare',
                      'srconvnet_plugin.export', 'srconvnet.infer', 'srconvnet.convert', 'srconvnet.export')
#: the toolbox's commands: console script and module
TOOLBOX_COMMANDS = {'srconvnet-train': 'srconvnet_plugin.train', 'srconvnet-test': 'srconvnet_plugin.test',
                    'srconvnet-demo': 'srconvnet_plugin.demo', 'srconvnet-compare': 'srconvnet_plugin.compare'}


def pyproject():
    return tomllib.loads((REPO_ROOT / 'pyproject.toml').read_text(encoding='utf-8'))['project']


def _name(requirement):
    return re.sub(r'[-_.]+', '-', requirement.name).lower()


def extra_requirements(extra):
    """The requirements (``Requirement``) of pyproject's extra ``extra``, this project's own extras expanded."""
    out = []
    for line in pyproject()['optional-dependencies'][extra]:
        req = Requirement(line)
        out += [r for e in req.extras for r in extra_requirements(e)] if _name(req) == 'srconvnet-plugin' else [req]
    return out


def requirement_closure(requirements):
    """``{name: distribution}`` of the installed distributions that ``requirements`` (strings) name, with what they
    need in turn (markers evaluated for this interpreter, extras left out)."""
    todo, seen = [Requirement(r) for r in requirements], {}
    while todo:
        req = todo.pop()
        if _name(req) in seen or (req.marker is not None and not req.marker.evaluate({'extra': ''})):
            continue
        seen[_name(req)] = dist = importlib.metadata.distribution(req.name)
        todo += [Requirement(r) for r in dist.requires or () if 'extra ==' not in r]
    return seen


def _run(cmd, cwd):
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, f'{" ".join(cmd)}\n{done.stdout[-3000:]}{done.stderr[-3000:]}'


def _all_at_once(commands, env, cwd, timeout=300):
    """Start every command (lists) at once; ``{tuple(command): (exit code, stdout, stderr)}`` when all have ended."""
    procs = {tuple(cmd): subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                          cwd=cwd) for cmd in commands}
    ended = {cmd: proc.communicate(timeout=timeout) for cmd, proc in procs.items()}
    return {cmd: (procs[cmd].returncode, *ended[cmd]) for cmd in procs}


PIP = [sys.executable, '-m', 'pip', '--disable-pip-version-check', '-q']


@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    """The wheel built from a copy of the checkout's sources."""
    root = tmp_path_factory.mktemp('wheel')
    src, wheels = root / 'src', root / 'wheels'
    shutil.copytree(REPO_ROOT, src, ignore=shutil.ignore_patterns(*NOT_SOURCES))
    _run(PIP + ['wheel', '--no-index', '--no-deps', '--no-build-isolation', '-w', str(wheels), str(src)], root)
    built = sorted(wheels.glob('srconvnet_plugin-*.whl'))
    assert len(built) == 1, built
    return built[0]


@pytest.fixture(scope='module')
def installed(wheel, tmp_path_factory):
    """``(target, env)``: the wheel installed into ``target`` and an environment that imports only from there."""
    target = tmp_path_factory.mktemp('target')
    _run(PIP + ['install', '--no-index', '--no-deps', '--target', str(target), str(wheel)], target)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(PYTHONPATH=str(target), OMP_NUM_THREADS='2')
    return target, env


@pytest.fixture(scope='module')
def core_only(wheel, tmp_path_factory):
    """``(venv, env)``: a new venv holding the wheel, which sees only the core's dependencies (pyproject's
    ``dependencies`` and their own, each linked from this environment into one folder that a ``.pth`` file of the
    venv names): what ``pip install .`` gives a model user, without basicsr, yaml or OpenCV."""
    root = tmp_path_factory.mktemp('core_only')
    venv, deps = root / 'venv', root / 'core_deps'
    _run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], root)
    deps.mkdir()
    for dist in requirement_closure(pyproject()['dependencies']).values():
        for top in {f.parts[0] for f in dist.files or ()} - {'..', '__pycache__'}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (deps / top).exists():
                (deps / top).symlink_to(source)
    python = venv / 'bin' / 'python'
    site = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / 'core_deps.pth').write_text(f'{deps}\n')
    _run(PIP + ['--python', str(python), 'install', '--no-index', '--no-deps', str(wheel)], root)
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV')}
    env.update(OMP_NUM_THREADS='2')
    return venv, env


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


@pytest.mark.slow
def test_every_documented_module_answers_help(installed, tmp_path):
    """0.1's names included: ``python -m srconvnet_plugin.infer`` / ``.convert`` run the core's commands."""
    target, env = installed
    done = _all_at_once([[sys.executable, '-m', module, '--help'] for module in DOCUMENTED_MODULES], env, tmp_path)
    for (*_, module, _), (code, out, err) in done.items():
        assert code == 0, f'python -m {module} --help: exit {code}\n{err[-3000:]}'
        assert out.startswith('usage: ') and '-h, --help' in out, f'python -m {module} --help printed:\n{out[:500]}'


@pytest.mark.slow
def test_the_documented_import_names_work_from_the_install(installed, tmp_path):
    target, env = installed
    code = ('import srconvnet.spandrel_support, srconvnet.infer, srconvnet.convert\n'
            'from srconvnet_plugin.spandrel_support import install\n'
            'from srconvnet_plugin.infer import load_model, run\n'
            'from srconvnet_plugin.convert import convert\n'
            'print(install is srconvnet.spandrel_support.install, run is srconvnet.infer.run,'
            ' load_model is srconvnet.infer.load_model, convert is srconvnet.convert.convert)')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ['True'] * 4


def test_the_launcher_checks_exactly_the_toolbox_extras_packages():
    """``srconvnet_plugin.launch.TOOLBOX_MODULES`` (import names) are the packages of pyproject's ``toolbox`` extra
    (distribution names), as this environment, which has the toolbox, maps one to the other."""
    from srconvnet_plugin.launch import TOOLBOX_MODULES

    extra = {_name(r) for r in extra_requirements('toolbox')}
    provided = importlib.metadata.packages_distributions()
    by_module = {m: {re.sub(r'[-_.]+', '-', d).lower() for d in provided.get(m, ())} & extra for m in TOOLBOX_MODULES}
    assert all(by_module.values()), f'modules of no toolbox package: {[m for m, d in by_module.items() if not d]}'
    assert set().union(*by_module.values()) == extra


@pytest.mark.slow
def test_the_core_only_venv_has_the_core_and_not_the_toolbox(core_only, tmp_path):
    """The environment the next tests run in is what they say: the installed core, torch, and no toolbox."""
    from srconvnet_plugin.launch import TOOLBOX_MODULES

    venv, env = core_only
    code = ('import importlib.util as u, srconvnet, srconvnet_plugin, sys\n'
            f'print(srconvnet.__file__, sys.prefix, *[m for m in {TOOLBOX_MODULES + ("torch", "safetensors")!r} '
            'if u.find_spec(m)])')
    done = subprocess.run([str(venv / 'bin' / 'python'), '-c', code], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    core_file, prefix, *found = done.stdout.split()
    assert Path(prefix) == venv and Path(core_file).is_relative_to(venv)
    assert found == ['torch', 'safetensors']


#: a use of each toolbox command (the toolbox message comes before any argument is read)
TOOLBOX_USES = {'srconvnet-train': ['-opt', 'train.yml'], 'srconvnet-test': ['-opt', 'test.yml'],
                'srconvnet-demo': ['--iters', '2'], 'srconvnet-compare': ['--scale', '4', '--archs', 'SRConvNet']}


@pytest.mark.slow
def test_in_a_core_only_install_every_toolbox_command_says_how_to_install_the_toolbox(core_only, tmp_path):
    """Console script and ``python -m``, with ``--help`` and with a use: one line naming the toolbox install, exit
    code 2, no traceback."""
    from srconvnet_plugin.launch import TOOLBOX_INSTALL

    venv, env = core_only
    commands = {}
    for script, module in TOOLBOX_COMMANDS.items():
        for args in (['--help'], TOOLBOX_USES[script]):
            commands[(str(venv / 'bin' / script), *args)] = script
            commands[(str(venv / 'bin' / 'python'), '-m', module, *args)] = script
    for cmd, (code, out, err) in _all_at_once(commands, env, tmp_path).items():
        script = commands[cmd]
        lines = err.splitlines()
        assert code == 2 and out == '' and len(lines) == 1, f'{" ".join(cmd)}: exit {code}\n{out}{err[-3000:]}'
        assert lines[0].startswith(f'error: {script} needs the BasicSR toolbox (not installed here: basicsr, '), err
        assert lines[0].endswith(TOOLBOX_INSTALL) and "pip install --no-build-isolation '.[toolbox]'" in lines[0]


@pytest.mark.slow
def test_in_a_core_only_install_srconvnet_infer_says_how_to_install_its_extra(core_only, tmp_path):
    """Without the ``infer`` extra (OpenCV, tqdm): one line, exit code 2, for the command and its module names."""
    from srconvnet.launch import INFER_INSTALL

    venv, env = core_only
    python = str(venv / 'bin' / 'python')
    commands = [[str(venv / 'bin' / 'srconvnet-infer'), '--help'],
                [str(venv / 'bin' / 'srconvnet-infer'), '-i', 'in', '-o', 'out', '--weights', 'w.pth'],
                [python, '-m', 'srconvnet.infer', '--help'], [python, '-m', 'srconvnet_plugin.infer', '--help']]
    for cmd, (code, out, err) in _all_at_once(commands, env, tmp_path).items():
        expected = f'error: srconvnet-infer needs OpenCV and tqdm (not installed here: cv2, tqdm): {INFER_INSTALL}\n'
        assert code == 2 and out == '' and err == expected, f'{" ".join(cmd)}: exit {code}\n{err}'


@pytest.mark.slow
def test_in_a_core_only_install_the_cores_commands_run(core_only, tmp_path):
    """``srconvnet-convert`` and its old name convert an authors' checkpoint."""
    venv, env = core_only
    python = str(venv / 'bin' / 'python')
    make = ('import torch; from srconvnet import SRConvNet; '
            'net = SRConvNet(num_feat=16, num_block=1, num_heads=2, num_kernels=2, upscale=2); '
            "torch.save({'model_state_dict': {'module.' + k: v for k, v in net.state_dict().items()}}, 'authors.pt')")
    subprocess.run([python, '-c', make], env=env, cwd=tmp_path, check=True, capture_output=True)
    commands = [[str(venv / 'bin' / 'srconvnet-convert'), 'authors.pt', 'a.pth'],
                [python, '-m', 'srconvnet_plugin.convert', 'authors.pt', 'b.safetensors']]
    for cmd, (code, out, err) in _all_at_once(commands, env, tmp_path).items():
        assert code == 0, f'{" ".join(cmd)}: exit {code}\n{err[-3000:]}'
    assert (tmp_path / 'a.pth').stat().st_size > 0 and (tmp_path / 'b.safetensors').stat().st_size > 0
