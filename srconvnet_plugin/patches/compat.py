"""Every patch this plugin applies to basicsr 1.4.2, in one place.

Nothing here edits site-packages; each shim says in one line which basicsr behaviour it replaces and why (the
failures are listed with their verified fixes in ``../shared/STACK.md``). Two groups:

* ``apply_import_shims`` runs when ``srconvnet_plugin`` is imported, before anything imports basicsr.
* ``apply_pipeline_shims`` runs when the entry points ``srconvnet_plugin.train`` / ``srconvnet_plugin.test`` are
  imported (call it yourself before driving ``basicsr.train.train_pipeline`` from other code). It is idempotent.

The pipeline shims also make basicsr fail clearly and lose nothing: the option checks of ``utils/checks.py`` run inside
``parse_options``; checkpoints are written atomically and a failed write stops training (``basicsr_checkpoints.py``);
``--auto_resume`` takes the newest complete state (``utils/resume.py``); a NaN/inf loss or a SIGINT/SIGTERM stops
training cleanly (``training_guards.py``, on ``utils/faults.py``); undecodable images and records are named
(``data/data_faults.py``). This module holds the wiring and the small shims; those modules hold the logic they wire
in, as public ``wrap_*`` functions.

The entry points themselves fix the remaining behaviour: they pass the current working directory as ``root_path``
(basicsr's own ``__main__`` computes it from its file, so outputs would land in site-packages).
"""
import argparse
import importlib
import sys

from .basicsr_checkpoints import SafeTorch, load_network, wrap_save, wrap_save_network

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
        from ..utils.options import OptionLoader
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
        basicsr opens the file), accepts ``--local-rank``, and reports every problem of the options in one message
        (``utils.checks.check_options``: arch, scale, device, training keys, checkpoint format, crop size and data)
        before anything is built: basicsr finds most of these only when the first batch is loaded or the loss is
        computed."""
        from ..utils.checks import check_options
        from ..utils.options import load_options
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
        check_options(opt, opt_path)  # every problem of the file, in one message
        return opt, args

    return parse_options


# --------------------------------------------------------------------------------------------------------------------
# distributed launch without CUDA
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


def _contiguous_filter2d(_orig):

    def filter2D(img, kernel):  # noqa: N802  (basicsr's name)
        """Wraps ``basicsr.utils.img_process_util.filter2D``: it ``view``s the padded image, which fails when the image
        is not contiguous (DiffJPEG's output, and ``F.interpolate`` of it, are channels-last on today's torch, so
        Real-ESRGAN's second degradation stops with "view size is not compatible ..."); give it a contiguous one."""
        return _orig(img.contiguous(), kernel)

    return filter2D


def apply_pipeline_shims():
    """Patch basicsr's train/test pipelines so they run on CPU or GPU, safely; see each shim's docstring."""
    global _PIPELINE_SHIMS_APPLIED
    if _PIPELINE_SHIMS_APPLIED:
        return
    apply_import_shims()
    import basicsr.data.data_sampler as data_sampler
    import basicsr.data.paired_image_dataset as paired_image_dataset
    import basicsr.data.realesrgan_dataset as realesrgan_dataset
    import basicsr.data.single_image_dataset as single_image_dataset
    import basicsr.models.base_model as base_model
    import basicsr.models.realesrgan_model as realesrgan_model
    import basicsr.models.realesrnet_model as realesrnet_model
    import basicsr.test
    import basicsr.train
    import basicsr.utils.file_client as file_client
    import basicsr.utils.img_process_util as img_process_util
    import basicsr.utils.options as options

    from ..data.data_faults import checked_imfrombytes, wrap_file_client_get, wrap_paired_getitem
    from ..utils.resume import load_resume_state
    from .training_guards import wrap_build_model, wrap_set_epoch, wrap_train_pipeline

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
    base_model.torch = SafeTorch()
    # pretrain_network_g: .safetensors too, and a bad checkpoint refused in one line (basicsr_checkpoints.load_network)
    base_model.BaseModel.load_network = load_network
    # the archs that load pretrained weights (VGG of the perceptual loss, SpyNet, ...) call torch.load too: the same
    for name in ('vgg_arch', 'spynet_arch', 'dfdnet_arch', 'basicvsr_arch', 'tof_arch', 'inception'):
        module = sys.modules.get(f'basicsr.archs.{name}') or importlib.import_module(f'basicsr.archs.{name}')
        if getattr(module, 'torch', None) is not None:
            module.torch = SafeTorch()
    # ... and basicsr swallows a failed save after 3 retries ("Just ignore it"): fail loudly instead
    # (logger: save_checkpoint_format: safetensors writes net_g_<iter>.safetensors)
    base_model.BaseModel.save_network = wrap_save(wrap_save_network(base_model.BaseModel.save_network), 'network')
    base_model.BaseModel.save_training_state = wrap_save(base_model.BaseModel.save_training_state,
                                                          'training state')
    # training keys of traiNNer-redux/neosr (use_amp, use_channels_last, use_compile, grad_clip, accum_iter, ...), and
    # Real-ESRGAN's models without .cuda(): SRModel and basicsr's RealESRNet/RealESRGAN models built as the plugin's
    from ..models.precision_model import substitute_sr_model
    basicsr.train.build_model = substitute_sr_model(basicsr.train.build_model)
    # real-world degradations: basicsr's filter2D fails on the non-contiguous images of the second degradation
    filter2d = _contiguous_filter2d(img_process_util.filter2D)
    for module in (img_process_util, realesrnet_model, realesrgan_model):
        module.filter2D = filter2d
    # training: a NaN/inf loss would train on (and be saved); SIGINT/SIGTERM would lose the work since the last save
    basicsr.train.build_model = wrap_build_model(basicsr.train.build_model)
    basicsr.train.train_pipeline = wrap_train_pipeline(basicsr.train.train_pipeline)
    data_sampler.EnlargedSampler.set_epoch = wrap_set_epoch(data_sampler.EnlargedSampler.set_epoch)
    # data: undecodable bytes end in "'NoneType' object has no attribute 'astype'" and missing LMDB keys in a
    # TypeError, neither naming the image; name the dataset, record or file
    file_client.FileClient.get = wrap_file_client_get(file_client.FileClient.get)
    for module in (paired_image_dataset, realesrgan_dataset, single_image_dataset):
        module.imfrombytes = checked_imfrombytes(module.imfrombytes)
    paired_image_dataset.PairedImageDataset.__getitem__ = wrap_paired_getitem(
        paired_image_dataset.PairedImageDataset.__getitem__)
    _PIPELINE_SHIMS_APPLIED = True
