"""Every patch this plugin applies to basicsr 1.4.2, in one place.

Nothing here edits site-packages; each shim says in one line which basicsr behaviour it replaces and why (the
failures are listed with their verified fixes in ``../shared/STACK.md``). Two groups:

* ``apply_import_shims`` runs when ``srconvnet_plugin`` is imported, before anything imports basicsr.
* ``apply_pipeline_shims`` runs when the entry points ``srconvnet_plugin.train`` / ``srconvnet_plugin.test`` are
  imported (call it yourself before driving ``basicsr.train.train_pipeline`` from other code). It is idempotent.

The entry points themselves fix the remaining behaviour: they pass the current working directory as ``root_path``
(basicsr's own ``__main__`` computes it from its file, so outputs would land in site-packages).
"""
import argparse
import importlib
import os.path as osp
import pickle
import sys
import types

_PIPELINE_SHIMS_APPLIED = False


def apply_import_shims():
    """Make ``import basicsr`` work on current torchvision."""
    # basicsr/data/degradations.py imports torchvision.transforms.functional_tensor, renamed to _functional_tensor
    # in torchvision 0.17; alias the new module under the old name so basicsr's eager imports succeed.
    try:
        importlib.import_module('torchvision.transforms.functional_tensor')
    except ImportError:
        sys.modules['torchvision.transforms.functional_tensor'] = importlib.import_module(
            'torchvision.transforms._functional_tensor')


# --------------------------------------------------------------------------------------------------------------------
# checkpoints: weights_only=True, always
# --------------------------------------------------------------------------------------------------------------------
def load_weights_only(path, map_location='cpu'):
    """``torch.load(path, weights_only=True)`` whose refusal names the file (a checkpoint is data, never code)."""
    import torch
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(f'{path}: refusing to load: the file holds more than tensors and plain '
                                     f'containers, so loading it could run code.\n{e}') from e


class _TorchWithWeightsOnlyLoad(types.ModuleType):
    """``torch`` as basicsr/models/base_model.py sees it: the same module, except that ``load`` is weights-only."""

    def __init__(self):
        super().__init__('torch')

    def __getattr__(self, name):
        return getattr(importlib.import_module('torch'), name)

    @staticmethod
    def load(f, map_location=None, **kwargs):
        kwargs.pop('weights_only', None)
        return load_weights_only(f, map_location=map_location)


# --------------------------------------------------------------------------------------------------------------------
# option files and command line
# --------------------------------------------------------------------------------------------------------------------
def _safe_ordered_yaml(_orig):

    def ordered_yaml():
        """Replaces basicsr's ``ordered_yaml``: same Dumper, but the safe ``OptionLoader`` instead of yaml.Loader."""
        from .options import OptionLoader
        return OptionLoader, _orig()[1]

    return ordered_yaml


def _normalise_local_rank(argv):
    """``torch.distributed.launch`` passes ``--local-rank``; basicsr's parser only knows ``--local_rank``."""
    out = []
    for arg in argv:
        if arg == '--local-rank' or arg.startswith('--local-rank='):
            arg = '--local_rank' + arg[len('--local-rank'):]
        out.append(arg)
    return out


def _wrap_parse_options(_orig):

    def parse_options(root_path, is_train=True):
        """Wraps basicsr's ``parse_options``: reads ``-opt`` with the safe loader first (refusing Python tags before
        basicsr opens the file), accepts ``--local-rank``, and names the option at fault when it asks for CUDA on a
        machine without it."""
        import torch

        from .options import OptionFileError, load_options
        argv = _normalise_local_rank(sys.argv)
        peek = argparse.ArgumentParser(add_help=False)
        peek.add_argument('-opt', type=str)
        opt_path = peek.parse_known_args(argv[1:])[0].opt
        if opt_path is not None:
            load_options(opt_path)
        saved_argv, sys.argv = sys.argv, argv
        try:
            opt, args = _orig(root_path, is_train)
        finally:
            sys.argv = saved_argv
        if opt['num_gpu'] != 0 and not torch.cuda.is_available():
            raise OptionFileError(f"{opt_path}: num_gpu: {opt['num_gpu']} asks for CUDA, but torch sees no CUDA device "
                                  "here; use num_gpu: 0 (or auto) to run on the CPU")
        return opt, args

    return parse_options


# --------------------------------------------------------------------------------------------------------------------
# distributed launch and resume without CUDA
# --------------------------------------------------------------------------------------------------------------------
def _wrap_init_dist(_orig):

    def init_dist(launcher, backend='nccl', **kwargs):
        """Wraps basicsr's ``init_dist``: NCCL unchanged on CUDA; without CUDA, basicsr calls
        ``torch.cuda.set_device(rank % 0)`` (ZeroDivisionError), so CPU runs get a gloo process group instead."""
        import torch
        import torch.distributed as dist
        if torch.cuda.is_available():
            return _orig(launcher, backend, **kwargs)
        if launcher != 'pytorch':
            raise ValueError(f'--launcher {launcher} needs CUDA; without CUDA launch with torchrun and '
                             '--launcher pytorch (gloo backend)')
        dist.init_process_group(backend='gloo', **kwargs)

    return init_dist


def _wrap_model_to_device(_orig):

    def model_to_device(self, net):
        """Wraps ``BaseModel.model_to_device``: basicsr gives DDP ``device_ids=[torch.cuda.current_device()]``, which
        fails without CUDA; CPU processes get DDP without ``device_ids``."""
        if self.opt['dist'] and self.device.type == 'cpu':
            from torch.nn.parallel import DistributedDataParallel
            return DistributedDataParallel(
                net.to(self.device), find_unused_parameters=self.opt.get('find_unused_parameters', False))
        return _orig(self, net)

    return model_to_device


def load_resume_state(opt):
    """Replaces ``basicsr.train.load_resume_state``, which looks for ``experiments/`` relative to the current directory
    instead of root_path, calls ``torch.cuda.current_device()`` (fails without CUDA) and unpickles with the defaults.

    ``--auto_resume`` picks the latest ``<iter>.state`` under ``opt['path']['training_states']`` (inside root_path);
    the state is mapped to the CPU when there is no CUDA or ``num_gpu: 0`` and loaded with ``weights_only=True``.
    """
    import torch

    from basicsr.utils import check_resume, scandir
    if opt['auto_resume']:
        path = None
        state_dir = opt['path']['training_states']
        if osp.isdir(state_dir):
            iters = [int(name[:-len('.state')]) for name in scandir(state_dir, suffix='.state', recursive=False)
                     if name[:-len('.state')].isdigit()]
            if iters:
                path = osp.join(state_dir, f'{max(iters)}.state')
                opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
    if path is None:
        return None
    if not osp.isfile(path):
        raise FileNotFoundError(f'path: resume_state: {path} does not exist')
    if torch.cuda.is_available() and opt['num_gpu'] != 0:
        map_location = torch.device('cuda', torch.cuda.current_device())
    else:
        map_location = torch.device('cpu')
    state = load_weights_only(path, map_location=map_location)
    check_resume(opt, state['iter'])
    return state


def apply_pipeline_shims():
    """Patch basicsr's train/test pipelines so they run on CPU or GPU, safely; see each shim's docstring."""
    global _PIPELINE_SHIMS_APPLIED
    if _PIPELINE_SHIMS_APPLIED:
        return
    apply_import_shims()
    import basicsr.models.base_model as base_model
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options as options

    # option files: basicsr's loader builds Python objects from tags; read them with the safe OptionLoader
    options.ordered_yaml = _safe_ordered_yaml(options.ordered_yaml)
    # distributed: gloo without CUDA (basicsr divides by the CUDA device count)
    options.init_dist = _wrap_init_dist(options.init_dist)
    # command line: safe pre-read of -opt, --local-rank from torch.distributed.launch, clear CUDA error
    wrapped = _wrap_parse_options(options.parse_options)
    options.parse_options = basicsr.train.parse_options = basicsr.test.parse_options = wrapped
    # resume: under root_path, on CPU when needed, weights-only
    basicsr.train.load_resume_state = load_resume_state
    # DDP on CPU: no device_ids
    base_model.BaseModel.model_to_device = _wrap_model_to_device(base_model.BaseModel.model_to_device)
    # BaseModel.load_network calls torch.load with torch's default weights_only; make it explicit and unconditional
    base_model.torch = _TorchWithWeightsOnlyLoad()
    _PIPELINE_SHIMS_APPLIED = True
