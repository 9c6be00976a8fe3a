"""The toolbox's commands where the toolbox may not be installed: ``srconvnet-train``, ``-test``, ``-demo``,
``-compare``.

``pip install .`` (the core, for model users) puts these console scripts on ``PATH`` too. They start here, and
:func:`srconvnet.launch.command` checks that the packages of the ``toolbox`` extra are installed before it imports
the command's module: where one is not, the command answers ``--help`` and any use with one line naming the toolbox
install, exit code 2, no traceback. ``python -m srconvnet_plugin.train`` (and ``.test``, ``.demo``, ``.compare``) get
the same line from :func:`require_toolbox` at the top of those modules.
"""
from srconvnet.launch import command, require

#: the import names of the ``toolbox`` extra's packages in pyproject.toml (``tests/test_install`` checks the two agree)
TOOLBOX_MODULES = ('basicsr', 'torchvision', 'mmengine', 'thop', 'lmdb', 'yaml', 'skimage', 'matplotlib', 'PIL',
                   'cv2', 'tqdm')
#: how to install the toolbox side, for messages
TOOLBOX_INSTALL = ("from the srconvnet-plugin repository, bash scripts/setup_env.sh or pip install "
                   "--no-build-isolation '.[toolbox]' (docs/installation.md)")
TOOLBOX = 'the BasicSR toolbox'


def require_toolbox(prog, module_name=None):
    """:func:`srconvnet.launch.require` for the toolbox: one line and exit code 2 for a module run as a command
    (``module_name == '__main__'``), ``ModuleNotFoundError`` for an import, where the toolbox is not installed."""
    require(prog, TOOLBOX, TOOLBOX_MODULES, TOOLBOX_INSTALL, module_name)


def train():
    """Console script ``srconvnet-train``: :func:`srconvnet_plugin.train.main`."""
    return command('srconvnet_plugin.train', 'srconvnet-train', TOOLBOX, TOOLBOX_MODULES, TOOLBOX_INSTALL)


def test():
    """Console script ``srconvnet-test``: :func:`srconvnet_plugin.test.main`."""
    return command('srconvnet_plugin.test', 'srconvnet-test', TOOLBOX, TOOLBOX_MODULES, TOOLBOX_INSTALL)


def demo():
    """Console script ``srconvnet-demo``: :func:`srconvnet_plugin.demo.main`."""
    return command('srconvnet_plugin.demo', 'srconvnet-demo', TOOLBOX, TOOLBOX_MODULES, TOOLBOX_INSTALL)


def compare():
    """Console script ``srconvnet-compare``: :func:`srconvnet_plugin.compare.main`."""
    return command('srconvnet_plugin.compare', 'srconvnet-compare', TOOLBOX, TOOLBOX_MODULES, TOOLBOX_INSTALL)
