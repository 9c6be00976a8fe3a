"""Commands whose module needs packages that an install may lack (an extra): one line naming the install instead.

A console script whose module imports a missing package at import time would end in a traceback. The commands that
need an extra start here instead: :func:`command` first asks ``importlib.util.find_spec`` whether the packages are
installed (nothing is imported), and where one is not it ends with one line naming the install, exit code 2, for
``--help`` as for any use; only then it imports the command's module. ``python -m <module>`` gets the same line
from :func:`require` at the top of the module. ``srconvnet-infer`` (the ``infer`` extra) starts here, and the
toolbox's commands through :mod:`srconvnet_plugin.launch`.
"""
import argparse
import importlib
import importlib.util

#: the ``infer`` extra of pyproject.toml, by import name, and how to install it
INFER_MODULES = ('cv2', 'tqdm')
INFER_INSTALL = "pip install opencv-python tqdm (the 'infer' extra: pip install '.[infer]' in the repository)"


def missing(modules):
    """Those of the top-level ``modules`` that are not installed here (found without importing them)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(prog, what, modules, install, module_name=None):
    """Do nothing where ``modules`` are installed. Otherwise a module run as a command (``module_name`` is
    ``'__main__'``) ends with one line (``prog`` needs ``what``, which is missing, and ``install``) and exit code 2,
    and an import raises ``ModuleNotFoundError`` with the same line."""
    absent = missing(modules)
    if not absent:
        return
    problem = f'{prog} needs {what} (not installed here: {", ".join(absent)}): {install}'
    if module_name == '__main__':
        argparse.ArgumentParser(prog=prog).exit(2, f'error: {problem}\n')
    raise ModuleNotFoundError(problem, name=absent[0])


def command(module, prog, what, modules, install):
    """Run ``module.main()`` as the console script ``prog`` once :func:`require` finds ``modules`` installed."""
    require(prog, what, modules, install, '__main__')
    return importlib.import_module(module).main()


def require_infer(module_name=None):
    """:func:`require` for ``srconvnet-infer``'s extra (OpenCV and tqdm)."""
    require('srconvnet-infer', 'OpenCV and tqdm', INFER_MODULES, INFER_INSTALL, module_name)


def infer():
    """Console script ``srconvnet-infer``: :func:`srconvnet.infer.main`."""
    return command('srconvnet.infer', 'srconvnet-infer', 'OpenCV and tqdm', INFER_MODULES, INFER_INSTALL)
