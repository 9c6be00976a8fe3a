"""The documented name of ``srconvnet-infer`` from before the core moved to :mod:`srconvnet.infer`:
``python -m srconvnet_plugin.infer`` keeps working and runs the same command, and its names stay importable here."""
from srconvnet.infer import *  # noqa: F401,F403
from srconvnet.infer import main

if __name__ == '__main__':
    main()
