"""Every patch this plugin applies to basicsr 1.4.2, in one place.

Nothing here edits site-packages; each shim says in one line which basicsr behaviour it replaces and why (the
failures are listed with their verified fixes in ``../shared/STACK.md``). Two groups:

* ``apply_import_shims`` runs when ``srconvnet_plugin`` is imported, before anything imports basicsr.
* ``apply_pipeline_shims`` runs when the entry points ``srconvnet_plugin.train`` / ``srconvnet_plugin.test`` are
  imported (call it yourself before driving ``basicsr.train.train_pipeline`` from other code). It is idempotent.

The pipeline shims also make basicsr fail clearly and lose nothing: the option checks of ``checks.py`` run inside
``parse_options``; checkpoints are written atomically and a failed write stops training; ``--auto_resume`` takes the
newest complete state; a NaN/inf loss or a SIGINT/SIGTERM stops training cleanly (``faults.py``); undecodable images
and records are named.

The entry points themselves fix the remaining behaviour: they pass the current working directory as ``root_path``
(basicsr's own ``__main__`` computes it from its file, so outputs would land in site-packages).
"""
import argparse
import functools
import importlib
import os
import os.path as osp
import sys
import threading
import types
import warnings

from .checkpoints import (CheckpointReadError, _SafeTorch, _wrap_save, _wrap_save_network, check_checkpoint_options,
                          load_network, load_weights_only, network_file, use_existing_network_files)
from .faults import NonFiniteLossError, StopRequest, TrainingInterrupted, leftover_temp_files, non_finite

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
        basicsr opens the file), accepts ``--local-rank``, names the option at fault when it asks for CUDA on a
        machine without it, and checks arch, scale, crop size and data (``checks.check_options``) before anything
        is built: basicsr finds most of these only when the first batch is loaded or the loss is computed."""
        import torch

        from .checks import check_options
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
        check_options(opt, opt_path)
        check_checkpoint_options(opt, opt_path)
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


def _map_location(opt):
    import torch
    if torch.cuda.is_available() and opt['num_gpu'] != 0:
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _resume_network_files(opt, resume_iter):
    """The ``net_<label>_<iter>.pth`` (or ``.safetensors``) files a resume at ``resume_iter`` will load."""
    ignore = opt['path'].get('ignore_resume_networks') or []
    return [network_file(opt['path']['models'], key[len('network_'):], resume_iter)
            for key in opt if key.startswith('network_') and key not in ignore]


def _complete(path, map_location):
    """Load ``path`` weights-only; None (and a warning) when it is truncated, corrupt or missing."""
    try:
        return load_weights_only(path, map_location=map_location)
    except (CheckpointReadError, FileNotFoundError) as e:
        warnings.warn(f'--auto_resume: skipping {path}: {e}', stacklevel=3)
        return None


def find_resume_state(opt, map_location='cpu'):
    """Newest complete training state for ``--auto_resume``: ``(path, state)`` or ``(None, None)``.

    Looks at ``<iter>.state`` under ``opt['path']['training_states']`` from the newest down and takes the first that
    loads (weights-only) and whose network files (``net_g_<iter>.pth``) load too; the others are skipped with a
    warning. Temporary files left by a save that was killed (``.<name>.<random>.tmp``) are removed, with a warning.
    A state that holds code is refused (``pickle.UnpicklingError``), not skipped.
    """
    from basicsr.utils import scandir
    state_dir = opt['path']['training_states']
    for folder in (state_dir, opt['path'].get('models')):
        leftovers = leftover_temp_files(folder) if folder else []
        for tmp in leftovers:
            try:
                os.unlink(tmp)
            except FileNotFoundError:  # another rank of the same run removed it first
                pass
        if leftovers:
            warnings.warn(f'--auto_resume: removed {len(leftovers)} incomplete temporary file(s) of an interrupted '
                          f'save in {folder}: {", ".join(osp.basename(t) for t in leftovers)}', stacklevel=2)
    if not osp.isdir(state_dir):
        return None, None
    iters = sorted((int(name[:-len('.state')]) for name in scandir(state_dir, suffix='.state', recursive=False)
                    if name[:-len('.state')].isdigit()), reverse=True)
    for it in iters:
        path = osp.join(state_dir, f'{it}.state')
        state = _complete(path, map_location)
        if state is None:
            continue
        if not all(_complete(net, 'cpu') is not None for net in _resume_network_files(opt, it)):
            continue
        return path, state
    if iters:
        warnings.warn(f'--auto_resume: none of the {len(iters)} training state(s) in {state_dir} is complete; '
                      'starting from scratch (basicsr archives the old experiment folder)', stacklevel=2)
    return None, None


def load_resume_state(opt):
    """Replaces ``basicsr.train.load_resume_state``, which looks for ``experiments/`` relative to the current directory
    instead of root_path, calls ``torch.cuda.current_device()`` (fails without CUDA), unpickles with the defaults and
    takes the newest ``.state`` even when it is half-written.

    ``--auto_resume`` takes the newest *complete* state (:func:`find_resume_state`); ``path: resume_state`` is loaded
    as given (an incomplete file is an error naming it). States are mapped to the CPU when there is no CUDA or
    ``num_gpu: 0`` and loaded with ``weights_only=True``.
    """
    from basicsr.utils import check_resume
    map_location = _map_location(opt)
    if opt['auto_resume']:
        path, state = find_resume_state(opt, map_location)
        if path is None:
            return None
        opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
        if path is None:
            return None
        if not osp.isfile(path):
            raise FileNotFoundError(f'path: resume_state: {path} does not exist')
        state = load_weights_only(path, map_location=map_location)
    check_resume(opt, state['iter'])
    use_existing_network_files(opt)  # check_resume names net_g_<iter>.pth, also when the run saved .safetensors
    return state


# --------------------------------------------------------------------------------------------------------------------
# training faults: non-finite losses, SIGINT/SIGTERM
# --------------------------------------------------------------------------------------------------------------------
#: the StopRequest of the running train_pipeline, and the epoch its train sampler is in
_RUN = types.SimpleNamespace(stop=None, epoch=0)


def _wrap_set_epoch(_orig):

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


def _wrap_build_model(_orig):

    @functools.wraps(_orig)
    def build_model(opt):
        """Wraps ``basicsr.train.build_model``: the training model gets :func:`guard_training`."""
        return guard_training(_orig(opt))

    return build_model


def _wrap_train_pipeline(_orig):

    @functools.wraps(_orig)
    def train_pipeline(root_path):
        """Wraps ``basicsr.train.train_pipeline``: while it runs, the first SIGINT/SIGTERM asks for "save and stop
        after this iteration" (basicsr would die mid-iteration and lose everything since the last checkpoint)."""

        def announce(signum):
            import signal
            print(f'{signal.Signals(signum).name} received: will save a resumable state after this iteration and '
                  'stop (send it again to stop at once, without saving).', file=sys.stderr, flush=True)

        with StopRequest(announce) as stop:
            _RUN.stop, _RUN.epoch = stop, 0
            try:
                return _orig(root_path)
            finally:
                _RUN.stop = None

    return train_pipeline


# --------------------------------------------------------------------------------------------------------------------
# data faults: undecodable images and records, named
# --------------------------------------------------------------------------------------------------------------------
class DataFaultError(ValueError):
    """An image or LMDB record that cannot be used; the message names the dataset, the key or file, and the fault."""


#: what the FileClient of this thread read last: (client_key, what) for the decoder's error message
_LAST_READ = threading.local()


def _wrap_file_client_get(_orig):

    @functools.wraps(_orig)
    def get(self, filepath, client_key='default'):
        """Wraps ``FileClient.get``: remembers what was read (for :func:`_checked_imfrombytes`) and names an LMDB key
        that is missing (basicsr passes ``None`` on to ``np.frombuffer``: "a bytes-like object is required")."""
        client = getattr(self, 'client', None)
        envs = getattr(client, '_client', None)
        if envs is not None and client_key in envs:
            what = f'{client_key} record {filepath!r} of the LMDB {envs[client_key].path()}'
        else:
            what = f'{client_key} image {filepath}'
        _LAST_READ.what = what
        value = _orig(self, filepath, client_key)
        if value is None:
            raise DataFaultError(f'{what}: no such key in the LMDB')
        return value

    return get


def _checked_imfrombytes(_orig):

    @functools.wraps(_orig)
    def imfrombytes(content, flag='color', float32=False):
        """Wraps basicsr's ``imfrombytes``: bytes OpenCV cannot decode (corrupt record, truncated file) raise an error
        naming the record or file, instead of ``'NoneType' object has no attribute 'astype'``."""
        img = _orig(content, flag, float32=False)
        if img is None:
            what = getattr(_LAST_READ, 'what', 'image')
            raise DataFaultError(f'{what}: cannot be decoded ({len(content)} bytes): the data is corrupt, truncated or '
                                 'not an image')
        return img.astype('float32') / 255. if float32 else img

    return imfrombytes


def _wrap_paired_getitem(_orig):

    @functools.wraps(_orig)
    def __getitem__(self, index):
        """Wraps ``PairedImageDataset.__getitem__``: any failure names the dataset and the GT/LQ pair (basicsr's
        size-mismatch error, for one, prints a tuple and names no file)."""
        try:
            return _orig(self, index)
        except DataFaultError as e:
            raise DataFaultError(f'datasets: {self.opt.get("name")}: {e}') from e
        except Exception as e:
            pair = self.paths[index]
            detail = ''.join(map(str, e.args)) or repr(e)  # (basicsr's scale-mismatch message is a 2-tuple)
            raise DataFaultError(f'datasets: {self.opt.get("name")}: GT {pair.get("gt_path")}, LQ '
                                 f'{pair.get("lq_path")}: {e.__class__.__name__}: {detail}') from e

    return __getitem__


def apply_pipeline_shims():
    """Patch basicsr's train/test pipelines so they run on CPU or GPU, safely; see each shim's docstring."""
    global _PIPELINE_SHIMS_APPLIED
    if _PIPELINE_SHIMS_APPLIED:
        return
    apply_import_shims()
    import basicsr.data.data_sampler as data_sampler
    import basicsr.data.paired_image_dataset as paired_image_dataset
    import basicsr.models.base_model as base_model
    import basicsr.test
    import basicsr.train
    import basicsr.utils.file_client as file_client
    import basicsr.utils.options as options

    # option files: basicsr's loader builds Python objects from tags; read them with the safe OptionLoader
    options.ordered_yaml = _safe_ordered_yaml(options.ordered_yaml)
    # distributed: gloo without CUDA (basicsr divides by the CUDA device count)
    options.init_dist = _wrap_init_dist(options.init_dist)
    # command line: safe pre-read of -opt, --local-rank from torch.distributed.launch, clear CUDA error, and the
    # option checks (checks.py), which catch in a second what basicsr finds at the first batch or loss, if at all
    wrapped = _wrap_parse_options(options.parse_options)
    options.parse_options = basicsr.train.parse_options = basicsr.test.parse_options = wrapped
    # resume: under root_path, on CPU when needed, weights-only, from the newest complete state
    basicsr.train.load_resume_state = load_resume_state
    # DDP on CPU: no device_ids
    base_model.BaseModel.model_to_device = _wrap_model_to_device(base_model.BaseModel.model_to_device)
    # BaseModel.load_network calls torch.load with torch's default weights_only; make it explicit and unconditional.
    # BaseModel's saves write in place (a kill mid-write leaves a truncated .pth/.state): write atomically instead
    base_model.torch = _SafeTorch()
    # pretrain_network_g: .safetensors too, and a bad checkpoint refused in one line (checkpoints.load_network)
    base_model.BaseModel.load_network = load_network
    # the archs that load pretrained weights (VGG of the perceptual loss, SpyNet, ...) call torch.load too: the same
    for name in ('vgg_arch', 'spynet_arch', 'dfdnet_arch', 'basicvsr_arch', 'tof_arch', 'inception'):
        module = sys.modules.get(f'basicsr.archs.{name}') or importlib.import_module(f'basicsr.archs.{name}')
        if getattr(module, 'torch', None) is not None:
            module.torch = _SafeTorch()
    # ... and basicsr swallows a failed save after 3 retries ("Just ignore it"): fail loudly instead
    # (logger: save_checkpoint_format: safetensors writes net_g_<iter>.safetensors)
    base_model.BaseModel.save_network = _wrap_save(_wrap_save_network(base_model.BaseModel.save_network), 'network')
    base_model.BaseModel.save_training_state = _wrap_save(base_model.BaseModel.save_training_state,
                                                          'training state')
    # training: a NaN/inf loss would train on (and be saved); SIGINT/SIGTERM would lose the work since the last save
    basicsr.train.build_model = _wrap_build_model(basicsr.train.build_model)
    basicsr.train.train_pipeline = _wrap_train_pipeline(basicsr.train.train_pipeline)
    data_sampler.EnlargedSampler.set_epoch = _wrap_set_epoch(data_sampler.EnlargedSampler.set_epoch)
    # data: undecodable bytes end in "'NoneType' object has no attribute 'astype'" and missing LMDB keys in a
    # TypeError, neither naming the image; name the dataset, record or file
    file_client.FileClient.get = _wrap_file_client_get(file_client.FileClient.get)
    paired_image_dataset.imfrombytes = _checked_imfrombytes(paired_image_dataset.imfrombytes)
    paired_image_dataset.PairedImageDataset.__getitem__ = _wrap_paired_getitem(
        paired_image_dataset.PairedImageDataset.__getitem__)
    _PIPELINE_SHIMS_APPLIED = True
