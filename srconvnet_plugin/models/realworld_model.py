"""Real-ESRGAN's two training stages for any BasicSR generator (SRConvNet here), on CPU, one GPU or several.

* ``model_type: RealSRConvNetModel``, stage 1 (Real-ESRNet): BasicSR's ``RealESRNetModel``, an L1 loss on pairs whose
  LQ side is made on the fly by Real-ESRGAN's second-order degradations (blur, resize, noise, JPEG, twice, and a final
  sinc filter) from the GT and kernels of ``RealESRGANDataset``, through a pool of training pairs (``queue_size``).
* ``model_type: RealSRConvNetGANModel``, stage 2 (Real-ESRGAN): BasicSR's ``RealESRGANModel``, fine-tuned from stage 1
  with a discriminator (``network_d``, e.g. ``UNetDiscriminatorSN``), L1, perceptual and GAN losses against the
  USM-sharpened GT where ``l1_gt_usm`` / ``percep_gt_usm`` / ``gan_gt_usm`` say.

The degradations, the pair pool, validation and saving are BasicSR's code (``basicsr.models.realesrnet_model`` and
``realesrgan_model``, registered there as ``RealESRNetModel_basicsr`` / ``RealESRGANModel_basicsr``; the plugin's
entry points build those names as these models). What differs:

* no ``.cuda()``: the JPEG simulator, the sharpener and the pair pool live on ``self.device``, so the models run on a
  CPU (``num_gpu: 0``), one GPU, DataParallel or DDP (BasicSR's hard-code them on the current CUDA device, which is
  the same device on GPUs);
* the training keys of :class:`~srconvnet_plugin.models.precision_model.PrecisionSRModel` (``use_amp``, ``amp_bf16``,
  ``use_channels_last``, ``use_compile``, ``train: grad_clip``, ``datasets: train: accum_iter``) work in both
  stages. In stage 2 the discriminator's forward and losses run under the same autocast and, for fp16, with its own
  GradScaler (saved with ``optimizer_d``'s state); gradient clipping applies to ``network_g`` only; with
  ``accum_iter`` both networks step every ``accum_iter`` batches, the EMA after each step.

BasicSR's ``filter2D`` fails on today's torch inside the second degradation (a ``view`` of a channels-last tensor);
``patches.compat.apply_pipeline_shims`` fixes it, as it fixes the rest of BasicSR's pipeline.
"""
import os
import os.path as osp
from collections import OrderedDict

import torch

from basicsr.losses.loss_util import get_refined_artifact_map
from basicsr.models.realesrgan_model import RealESRGANModel
from basicsr.models.realesrnet_model import RealESRNetModel
from basicsr.utils import DiffJPEG, USMSharp
from basicsr.utils.registry import MODEL_REGISTRY

from .precision_model import PrecisionSRModel

#: the top-level keys of Real-ESRGAN's degradations that both stages read (``opt[key]``, no defaults)
DEGRADATION_KEYS = ('resize_prob', 'resize_range', 'gaussian_noise_prob', 'noise_range', 'poisson_scale_range',
                    'gray_noise_prob', 'jpeg_range', 'second_blur_prob', 'resize_prob2', 'resize_range2',
                    'gaussian_noise_prob2', 'noise_range2', 'poisson_scale_range2', 'gray_noise_prob2', 'jpeg_range2')
#: the top-level keys each stage reads besides those (the GT crop, and which GT is USM-sharpened)
STAGE_KEYS = {'RealSRConvNetModel': ('gt_size', 'gt_usm'),
              'RealSRConvNetGANModel': ('gt_size', 'l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm')}
#: the keys of ``RealESRGANDataset`` (the blur kernels of both degradations and the final sinc filter, flips)
DATASET_KEYS = ('blur_kernel_size', 'kernel_list', 'kernel_prob', 'blur_sigma', 'betag_range', 'betap_range',
                'sinc_prob', 'blur_kernel_size2', 'kernel_list2', 'kernel_prob2', 'blur_sigma2', 'betag_range2',
                'betap_range2', 'sinc_prob2', 'final_sinc_prob', 'use_hflip', 'use_rot')
#: ``RealESRGANDataset`` pads or crops every GT image to this size before the model crops ``gt_size`` from it
DATASET_CROP = 400
#: the names ``RealESRGANDataset`` is registered under
REALESRGAN_DATASETS = ('RealESRGANDataset', 'RealESRGANDataset_basicsr')


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _vgg_download_problem(url, timeout=5):
    """Why ``url`` cannot be fetched from here (None if it can), asked the way torch.hub downloads (urllib, so proxy
    variables count)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method='HEAD'), timeout=timeout):
            return None
    except (urllib.error.URLError, OSError, ValueError) as e:
        return str(getattr(e, 'reason', None) or e)


def perceptual_weights_problems(opt):
    """``train: perceptual_opt``: BasicSR's VGG feature extractor reads ``experiments/pretrained_models/
    vgg19-dcbb9e9d.pth`` (relative to the working directory) when it is there, else torchvision downloads its VGG
    weights while the model is built; a problem, naming the path and the download, when neither can work."""
    perceptual = (opt.get('train') or {}).get('perceptual_opt')
    if not opt.get('is_train') or not perceptual:
        return []
    import torchvision

    from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH
    vgg_type = perceptual.get('vgg_type', 'vgg19')
    if osp.isfile(VGG_PRETRAIN_PATH):
        return []
    try:
        url = torchvision.models.get_model_weights(vgg_type).IMAGENET1K_V1.url
    except (ValueError, AttributeError):
        return [f'train: perceptual_opt: vgg_type: {vgg_type!r} is not a torchvision VGG (vgg19, ...)']
    if osp.isfile(osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(url))):
        return []
    reason = _vgg_download_problem(url)
    if reason is None:
        return []
    return [f'train: perceptual_opt: vgg_type: {vgg_type}: the VGG weights of the perceptual loss are not at '
            f'{osp.abspath(VGG_PRETRAIN_PATH)} and cannot be downloaded here ({reason}); download {url} elsewhere '
            'and copy it to that path']


def check_options(opt):
    """Problems with the keys Real-ESRGAN's two stages read (``RealSRConvNetModel``, ``RealSRConvNetGANModel`` and
    BasicSR's names for them): the degradation keys, ``gt_size``, ``queue_size``, the dataset type, ``network_d``,
    stage 1's weights and the perceptual loss's VGG weights; one line each, ``[]`` if there are none. Called by the
    option collector (:func:`srconvnet_plugin.utils.checks.check_options`); the dataset's own keys and files are
    checked with the datasets (:mod:`srconvnet_plugin.data.dataset_checks`)."""
    return _stage_problems(opt) + perceptual_weights_problems(opt)


def _stage_problems(opt):
    from .precision_model import MODEL_SUBSTITUTES
    problems = []
    model_type = opt.get('model_type')
    model = MODEL_SUBSTITUTES.get(model_type, model_type)
    if model not in STAGE_KEYS or not opt.get('is_train'):
        return problems
    if model == 'RealSRConvNetGANModel':
        if not opt.get('network_d'):
            problems.append(f'network_d: missing; model_type: {model_type} trains a discriminator (Real-ESRGAN: '
                            'type: UNetDiscriminatorSN_basicsr, num_in_ch: 3, num_feat: 64, skip_connection: true)')
        pretrained = (opt.get('path') or {}).get('pretrain_network_g')
        states = (opt.get('path') or {}).get('training_states')
        resuming = opt.get('path', {}).get('resume_state') or (
            opt.get('auto_resume') and states and osp.isdir(states) and any(n.endswith('.state')
                                                                            for n in os.listdir(states)))
        if pretrained is not None and not resuming and not osp.exists(pretrained):
            problems.append(f'path: pretrain_network_g: {pretrained} does not exist; stage 2 fine-tunes the '
                            'weights of stage 1 (model_type: RealSRConvNetModel): train stage 1 first, or point '
                            'pretrain_network_g at its net_g_latest.pth')
    if not opt.get('high_order_degradation', True):
        return problems
    missing = [key for key in (*DEGRADATION_KEYS, *STAGE_KEYS[model]) if key not in opt]
    if missing:
        problems.append(f'{", ".join(missing)}: missing; model_type: {model_type} makes the LQ images on the '
                        'fly with Real-ESRGAN\'s degradations and reads these top-level keys (their values: '
                        'options/train/RealSRConvNet/)')
    gt_size, scale = opt.get('gt_size'), opt.get('scale')
    if 'gt_size' in opt:
        if not _positive_int(gt_size):
            problems.append(f'gt_size: {gt_size!r}: the GT crop must be a positive integer')
        elif gt_size > DATASET_CROP:
            problems.append(f'gt_size: {gt_size} is larger than the {DATASET_CROP}x{DATASET_CROP} GT that '
                            f'RealESRGANDataset hands the model (it pads or crops every image to {DATASET_CROP})')
        elif _positive_int(scale) and gt_size % scale:
            problems.append(f'gt_size: {gt_size} is not divisible by scale: {scale}; use e.g. '
                            f'{gt_size - gt_size % scale}')
    train_set = (opt.get('datasets') or {}).get('train') or {}
    queue, batch = opt.get('queue_size', 180), train_set.get('batch_size_per_gpu')
    if not _positive_int(queue):
        problems.append(f'queue_size: {queue!r}: the pool of training pairs needs a positive integer size')
    elif _positive_int(batch) and queue % batch:
        problems.append(f'queue_size: {queue} is not a multiple of datasets: train: batch_size_per_gpu: '
                        f'{batch} (the pool of training pairs is filled and drawn a batch at a time); use e.g. '
                        f'{max(batch, queue - queue % batch)}')
    if train_set and train_set.get('type') not in REALESRGAN_DATASETS:
        problems.append(f'datasets: train: type: {train_set.get("type")}: model_type: {model_type} degrades '
                        'the GT with the kernels RealESRGANDataset draws; use type: RealESRGANDataset_basicsr (or '
                        'high_order_degradation: false to train on ready-made pairs)')
    return problems


class _OnDevice:
    """``__init__`` and the pair pool of BasicSR's real-world models, on ``self.device`` instead of ``.cuda()``."""

    #: the BasicSR model whose ``__init__`` this one replaces (its parents' ``__init__`` still runs)
    _basicsr_model = None

    def __init__(self, opt):
        super(self._basicsr_model, self).__init__(opt)
        self.jpeger = DiffJPEG(differentiable=False).to(self.device)  # simulates JPEG compression artifacts
        self.usm_sharpener = USMSharp().to(self.device)  # unsharp masking of the GT
        self.queue_size = opt.get('queue_size', 180)

    @torch.no_grad()
    def _dequeue_and_enqueue(self):
        """BasicSR's pool of training pairs, allocated on ``self.device`` (``utils.checks`` refuses a ``queue_size``
        that is not a multiple of ``batch_size_per_gpu`` before training starts; this is BasicSR's assertion)."""
        if not hasattr(self, 'queue_lr'):
            if self.queue_size % self.lq.size(0):
                raise ValueError(f'queue_size: {self.queue_size} is not a multiple of the batch size {self.lq.size(0)}')
            self.queue_lr = self.lq.new_zeros(self.queue_size, *self.lq.shape[1:])
            self.queue_gt = self.gt.new_zeros(self.queue_size, *self.gt.shape[1:])
            self.queue_ptr = 0
        super()._dequeue_and_enqueue()


@MODEL_REGISTRY.register()
class RealSRConvNetModel(PrecisionSRModel, _OnDevice, RealESRNetModel):
    """Stage 1: BasicSR's ``RealESRNetModel`` (L1 on second-order degraded pairs) with the plugin's training keys."""

    _basicsr_model = RealESRNetModel


@MODEL_REGISTRY.register()
class RealSRConvNetGANModel(PrecisionSRModel, _OnDevice, RealESRGANModel):
    """Stage 2: BasicSR's ``RealESRGANModel`` (L1 + perceptual + GAN, U-Net discriminator) with the training keys."""

    _basicsr_model = RealESRGANModel

    def setup_optimizers(self):
        super().setup_optimizers()  # optimizer_g (with its GradScaler under fp16) and optimizer_d
        self.grad_scaler_d = None
        if self.settings.amp_dtype is torch.float16:
            self.grad_scaler_d = self.attach_grad_scaler(self.optimizer_d, 'GradScaler of network_d')

    def optimize_parameters(self, current_iter):
        """``RealESRGANModel.optimize_parameters`` (same losses, targets, order and log names) under the settings:
        autocast, GradScalers, clipping of ``network_g``, accumulation over ``accum_iter`` batches."""
        l1_gt = self.gt_usm if self.opt['l1_gt_usm'] else self.gt
        percep_gt = self.gt_usm if self.opt['percep_gt_usm'] else self.gt
        gan_gt = self.gt_usm if self.opt['gan_gt_usm'] else self.gt
        step = self.is_step(current_iter)
        train_g = current_iter % self.net_d_iters == 0 and current_iter > self.net_d_init_iters

        # generator
        for p in self.net_d.parameters():
            p.requires_grad = False
        with self.accumulating(step, self.net_g):
            with self.autocast():
                self.output = self._train_forward(self.lq)
            loss_dict = OrderedDict()
            if train_g:
                with self.autocast():
                    l_g_total, loss_dict = self.losses(self.output, l1_gt, percep_gt, prefix='l_g_')
                    if self.cri_ldl:
                        output_ema = self.net_g_ema(self.lq)
                        weight = get_refined_artifact_map(self.gt, self.output, output_ema, 7)
                        loss_dict['l_g_ldl'] = self.cri_ldl(weight * self.output, weight * self.gt)
                        l_g_total += loss_dict['l_g_ldl']
                    loss_dict['l_g_gan'] = self.cri_gan(self.net_d(self.output), True, is_disc=False)
                    l_g_total += loss_dict['l_g_gan']
                self.backward(l_g_total, self.grad_scaler)
        if train_g and step:
            self.step(self.optimizer_g, self.grad_scaler, clip=self.net_g)

        # discriminator
        for p in self.net_d.parameters():
            p.requires_grad = True
        fake = self.output.detach().clone()
        with self.accumulating(step, self.net_d):
            for name, images, target in (('real', gan_gt, True), ('fake', fake, False)):
                with self.autocast():
                    pred = self.net_d(images)
                    loss_dict[f'l_d_{name}'] = self.cri_gan(pred, target, is_disc=True)
                loss_dict[f'out_d_{name}'] = torch.mean(pred.detach().float())
                self.backward(loss_dict[f'l_d_{name}'], self.grad_scaler_d)
        if step:
            self.step(self.optimizer_d, self.grad_scaler_d)
            if self.ema_decay > 0:
                self.model_ema(decay=self.ema_decay)
        self.log_dict = self.reduce_loss_dict(loss_dict)
