"""The documented name of ``srconvnet-convert`` from before the core moved to :mod:`srconvnet.convert`:
``python -m srconvnet_plugin.convert`` keeps working and runs the same command, and its names stay importable here."""
from srconvnet.convert import *  # noqa: F401,F403
from srconvnet.convert import main

if __name__ == '__main__':
    main()
