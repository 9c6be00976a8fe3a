"""The toolbox's plumbing that is neither a basicsr patch (``srconvnet_plugin.patches``) nor a measurement
(``srconvnet_plugin.measure``): safe option files (``options``), the one collector of option problems (``checks``),
resuming (``resume``) and the training faults (``faults``). ``compat`` is the documented older path of
``srconvnet_plugin.patches.compat``'s ``apply_import_shims`` / ``apply_pipeline_shims``."""
