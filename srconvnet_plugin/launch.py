"""The toolbox's commands where the toolbox may not be installed: ``srconvnet-train``, ``-test``, ``-demo``, ``-compare``.

``pip install .`` (the core, for model users) puts these console scripts on ``PATH`` too. This module imports nothing
but the standard library: each console script first asks ``importlib.util.find_spec`` whether the packages of the
``toolbox`` extra are installed, and where one is not it ends with one line naming the toolbox install (exit code 2,
no traceback), for ``--help`` as for any use; only then it imports its module. ``python -m srconvnet_plugin.train``
(and ``.test``, ``.demo``, ``.compare``) get the same line from :func:`require_toolbox` at the top of those modules.
"""
import argparse
import importlib
import importlib.util

#: the import names of the ``toolbox`` extra's packages in pyproject.toml (``tests/test_install`` checks the two agree)
TOOLBOX_MODULES = ('basicsr', 'torchvision', 'mmengine', 'thop', 'lmdb', 'yaml', 'skimage', 'matplotlib', 'PIL',
                   'cv2', 'tqdm')
#: how to install the toolbox side, for messages
TOOLBOX_INSTALL = ("from the srconvnet-plugin repository, bash scripts/setup_env.sh or pip install "
                   "--no-build-isolation '.[toolbox]' (docs/installation.md)")


def missing_toolbox():
    """The top-level modules of :data:`TOOLBOX_MODULES` that are not installed here (found without importing)."""
    return [name for name in TOOLBOX_MODULES if importlib.util.find_spec(name) is None]


def require_toolbox(prog, module_name=None):
    """Do nothing where the toolbox is installed. Otherwise a module run as a command (``module_name`` is
    ``'__main__'``) ends with one line naming the toolbox install and exit code 2, and an import raises
    ``ModuleNotFoundError`` with the same line."""
    missing = missing_toolbox()
    if not missing:
        return
    problem = f'{prog} needs the BasicSR toolbox (not installed here: {", ".join(missing)}): {TOOLBOX_INSTALL}'
    if module_name == '__main__':
        argparse.ArgumentParser(prog=prog).exit(2, f'error: {problem}\n')
    raise ModuleNotFoundError(problem, name=missing[0])


def _command(module, prog):
    require_toolbox(prog, '__main__')
    return importlib.import_module(module).main()


def train():
    """Console script ``srconvnet-train``: :func:`srconvnet_plugin.train.main`."""
    return _command('srconvnet_plugin.train', 'srconvnet-train')


def test():
    """Console script ``srconvnet-test``: :func:`srconvnet_plugin.test.main`."""
    return _command('srconvnet_plugin.test', 'srconvnet-test')


def demo():
    """Console script ``srconvnet-demo``: :func:`srconvnet_plugin.demo.main`."""
    return _command('srconvnet_plugin.demo', 'srconvnet-demo')


def compare():
    """Console script ``srconvnet-compare``: :func:`srconvnet_plugin.compare.main`."""
    return _command('srconvnet_plugin.compare', 'srconvnet-compare')
