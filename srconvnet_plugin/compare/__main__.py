"""``python -m srconvnet_plugin.compare``: the ``srconvnet-compare`` command."""
from srconvnet_plugin.compare.cli import main

main()
