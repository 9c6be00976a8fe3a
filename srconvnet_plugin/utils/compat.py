"""The documented older path of the basicsr patches (docs/compatibility.md): ``srconvnet_plugin.utils.compat.
apply_pipeline_shims()`` keeps working in scripts written against it; the patches are in
:mod:`srconvnet_plugin.patches.compat`."""
from srconvnet_plugin.patches.compat import apply_import_shims, apply_pipeline_shims

__all__ = ['apply_import_shims', 'apply_pipeline_shims']
