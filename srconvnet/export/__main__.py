"""``python -m srconvnet.export``: see :func:`srconvnet.export.main`."""
from srconvnet.export import main

main()
