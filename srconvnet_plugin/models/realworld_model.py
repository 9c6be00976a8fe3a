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
``utils.compat.apply_pipeline_shims`` fixes it, as it fixes the rest of BasicSR's pipeline.
"""
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
