"""The documented name of ``srconvnet-infer`` from before the core moved to :mod:`srconvnet.infer`:
``python -m srconvnet_plugin.infer`` keeps working and runs the same command, and its names stay importable here."""
from srconvnet.launch import require_infer

require_infer(__name__)  # the 'infer' extra, before OpenCV is imported
from srconvnet.infer import *  # noqa: E402,F401,F403
from srconvnet.infer import main  # noqa: E402

if __name__ == '__main__':
    main()
