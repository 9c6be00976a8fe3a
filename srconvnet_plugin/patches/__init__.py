"""Every patch the toolbox applies to basicsr 1.4.2: the wiring and the small shims (``compat``), checkpoints in
basicsr's models (``basicsr_checkpoints``) and the training fault guards (``training_guards``). The data-side patches
are in ``srconvnet_plugin.data.data_faults``."""
