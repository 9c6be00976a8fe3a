"""Surviving faults during training: atomic checkpoint writes, stopping on non-finite losses, stopping on signals.

``compat.apply_pipeline_shims`` wires these into basicsr's pipeline; they are plain functions and can be used alone:

* :class:`StopRequest` turns the first SIGINT/SIGTERM into "save a resumable state after this iteration, then stop";
  a second signal stops at once.
* :func:`non_finite` finds NaN/inf in a loss dict or in a network's parameters.
"""
import math
import signal
import threading


class TrainingStopped(RuntimeError):
    """Training stopped on purpose (a fault was detected or a stop was requested); the message says why and what is
    kept. ``exit_code`` is what the entry point exits with."""
    exit_code = 1


class NonFiniteLossError(TrainingStopped):
    """A loss (or a network parameter) became NaN or inf; nothing from this iteration was saved."""


class CheckpointSaveError(TrainingStopped, OSError):
    """A checkpoint could not be written (full disk, quota, I/O error); the previous file of that name is unchanged."""


class TrainingInterrupted(TrainingStopped):
    """SIGINT/SIGTERM: a resumable state was saved, then training stopped."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.exit_code = 128 + signum


def non_finite(log_dict=None, net=None):
    """Names of the NaN/inf entries of a loss dict (``{'l_pix': 0.1}``) and, if given, ``'parameters of <net>'``
    when any parameter of ``net`` is not finite. Empty list: everything is finite."""
    import torch
    bad = []
    for key, value in (log_dict or {}).items():
        value = float(value)
        if not math.isfinite(value):
            bad.append(f'{key} = {value}')
    if net is not None:
        params = [p.detach() for p in net.parameters()]
        if params and not torch.isfinite(torch.stack([p.float().sum() for p in params]).sum()):
            names = [n for n, p in net.named_parameters() if not torch.isfinite(p.detach()).all()]
            if names:  # (a finite but huge sum can overflow; only report real NaN/inf parameters)
                bad.append(f'non-finite parameters: {", ".join(names[:5])}{" ..." if len(names) > 5 else ""}')
    return bad


class StopRequest:
    """SIGINT/SIGTERM handlers for the duration of a ``with`` block (main thread only; elsewhere a no-op).

    The first signal sets :attr:`signum` (training then saves and stops after the current iteration); a second one
    raises ``KeyboardInterrupt`` at once. Previous handlers are restored on exit. Processes forked inside the block
    (DataLoader workers) inherit the handlers, so a terminal's Ctrl-C, which reaches the whole process group, does not
    kill the workers before the main process has saved.
    """
    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, on_first=None):
        self.signum = None
        self._on_first = on_first
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt(f'second {signal.Signals(signum).name}: stopping without saving')
        self.signum = signum
        if self._on_first is not None:
            self._on_first(signum)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
        return False
