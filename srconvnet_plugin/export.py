"""The documented name of the export from before the core moved to :mod:`srconvnet.export`:
``python -m srconvnet_plugin.export`` keeps working and runs the same command."""
from srconvnet.export import *  # noqa: F401,F403
from srconvnet.export import main

if __name__ == '__main__':
    main()
