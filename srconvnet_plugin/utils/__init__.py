"""The toolbox's plumbing: every basicsr patch (``compat``), safe option files and their checks (``options``,
``checks``), checkpoints in basicsr's models (``basicsr_checkpoints``), resuming and fault handling (``resume``,
``training_guards``, ``faults``), parameter/MAC counts and timing (``complexity``, ``profiling``)."""
