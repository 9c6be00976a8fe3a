"""Training fault guards: a NaN/inf loss stops training before anything of that iteration is saved, and a
SIGINT/SIGTERM saves a resumable state after the current iteration, then stops.

``compat.apply_pipeline_shims`` wires :func:`wrap_build_model`, :func:`wrap_train_pipeline` and
:func:`wrap_set_epoch` into basicsr; :func:`guard_training` can wrap any basicsr model alone. The checks themselves
(``non_finite``, ``StopRequest``) live in ``utils/faults.py``.
"""
import functools
import os.path as osp
import sys
import types

from ..utils.faults import NonFiniteLossError, StopRequest, TrainingInterrupted, non_finite

#: the StopRequest of the running train_pipeline, and the epoch its train sampler is in
_RUN = types.SimpleNamespace(stop=None, epoch=0)


def wrap_set_epoch(_orig):

    @functools.wraps(_orig)
    def set_epoch(self, epoch):
        """Wraps ``EnlargedSampler.set_epoch`` to remember the epoch, which a state saved on a signal records."""
        _RUN.epoch = epoch
        return _orig(self, epoch)

    return set_epoch


def _newest_state(opt):
    from basicsr.utils import scandir
    folder = opt['path'].get('training_states')
    if not folder or not osp.isdir(folder):
        return None
    iters = [int(n[:-6]) for n in scandir(folder, suffix='.state', recursive=False) if n[:-6].isdigit()]
    return osp.join(folder, f'{max(iters)}.state') if iters else None


def _agree_across_ranks(model, flags):
    """Element-wise max of small integer flags over all ranks, so every rank stops at the same iteration."""
    if not model.opt.get('dist'):
        return flags
    import torch
    import torch.distributed as dist
    t = torch.tensor(flags, dtype=torch.float32, device=model.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [int(v) for v in t.tolist()]


def guard_training(model):
    """Wrap ``model.optimize_parameters`` (this instance) so that after every step

    * a NaN/inf loss or parameter stops training (:class:`NonFiniteLossError`) before anything of this iteration is
      saved, so the newest checkpoint on disk is the last good one;
    * a SIGINT/SIGTERM received during the step (or before it) saves models and a resumable state for this iteration,
      then stops (:class:`TrainingInterrupted`).
    """
    from basicsr.utils import get_root_logger
    step = model.optimize_parameters

    @functools.wraps(step)
    def optimize_parameters(current_iter, *args, **kwargs):
        step(current_iter, *args, **kwargs)
        bad = non_finite(getattr(model, 'log_dict', None), getattr(model, 'net_g', None))
        signum = _RUN.stop.signum if _RUN.stop is not None else None
        any_bad, signum = _agree_across_ranks(model, [int(bool(bad)), signum or 0])
        logger = get_root_logger()
        if any_bad:
            newest = _newest_state(model.opt)
            message = (f'iteration {current_iter}: non-finite training loss ({"; ".join(bad) or "on another rank"}); '
                       'training stopped and nothing of this iteration was saved. Last good checkpoint: '
                       f'{newest or "none (no state saved yet)"}. Lower the learning rate or check the data, then '
                       'continue with --auto_resume.')
            logger.error(message)
            raise NonFiniteLossError(message)
        if signum:
            import signal
            name = signal.Signals(signum).name
            logger.warning(f'{name} received: saving models and training state of iteration {current_iter}.')
            model.save(_RUN.epoch, current_iter)
            message = (f'{name}: stopped after iteration {current_iter}; saved '
                       f'{osp.join(model.opt["path"]["training_states"], f"{current_iter}.state")}; continue with '
                       '--auto_resume.')
            logger.warning(message)
            raise TrainingInterrupted(message, signum)

    model.optimize_parameters = optimize_parameters
    return model


def wrap_build_model(_orig):

    @functools.wraps(_orig)
    def build_model(opt):
        """Wraps ``basicsr.train.build_model``: the training model gets :func:`guard_training`."""
        return guard_training(_orig(opt))

    return build_model


def wrap_train_pipeline(_orig):

    @functools.wraps(_orig)
    def train_pipeline(root_path):
        """Wraps ``basicsr.train.train_pipeline``: while it runs, the first SIGINT/SIGTERM asks for "save and stop
        after this iteration" (basicsr would die mid-iteration and lose everything since the last checkpoint).
        When it completes, the ranks of a distributed run wait for each other and destroy the process group
        (basicsr never does; see :func:`_end_process_group`)."""

        def announce(signum):
            import signal
            print(f'{signal.Signals(signum).name} received: will save a resumable state after this iteration and '
                  'stop (send it again to stop at once, without saving).', file=sys.stderr, flush=True)

        with StopRequest(announce) as stop:
            _RUN.stop, _RUN.epoch = stop, 0
            try:
                result = _orig(root_path)
            finally:
                _RUN.stop = None
            _end_process_group()
            return result

    return train_pipeline


def _end_process_group():
    """After a distributed run that completed: wait for every rank, then destroy the process group (no-op otherwise).

    Only rank 0 saves and validates at the end, so the other ranks would exit first while it still holds their gloo
    connections; such a rank could abort in its teardown ("terminate called without an active exception").
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
