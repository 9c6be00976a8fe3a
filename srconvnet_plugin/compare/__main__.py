"""``python -m srconvnet_plugin.compare``: the ``srconvnet-compare`` command (the package checks the toolbox first)."""
from srconvnet_plugin.compare.cli import main

main()
