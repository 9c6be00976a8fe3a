"""BasicSR's ``SRModel`` with the training keys of traiNNer-redux / neosr: mixed precision, channels-last,
``torch.compile``, gradient clipping and gradient accumulation.

The plugin's entry point (``srconvnet-train`` / ``python -m srconvnet_plugin.train``) builds this model wherever the
option file says ``model_type: SRModel`` (:func:`substitute_sr_model`, wired in ``compat.apply_pipeline_shims``); it
is also registered as ``model_type: PrecisionSRModel``. With none of the keys set it trains exactly like ``SRModel``
(fp32, no clipping, one batch per optimizer step) and writes the same files. The keys::

    use_amp: false            # top level: autocast the forward pass and the loss (fp16 + GradScaler unless amp_bf16)
    amp_bf16: false           # with use_amp: bfloat16 autocast (no GradScaler; CPUs and Ampere+ GPUs)
    use_channels_last: false  # 4-D weights of network_g and the batches in channels-last memory format
    use_compile: false        # torch.compile network_g's training forward
    compile_mode: default     # torch.compile mode: default, reduce-overhead, max-autotune, ...
    train:
      grad_clip: false        # clip the gradient norm of network_g (after unscaling, before the step)
      grad_clip_max_norm: 1.0 # ... to this max norm
    datasets:
      train:
        accum_iter: 1         # optimizer step every accum_iter iterations (batches), gradients summed / accum_iter

The Fourier unit of SRConvNet stays float32 under autocast (the arch disables autocast around its FFTs). fp16's
GradScaler state is kept in the training state (inside the state of the first optimizer, key ``grad_scaler``) and
comes back with ``--auto_resume``. Validation runs under the same autocast (as traiNNer-redux does); its outputs are
cast back to float32 before the metrics. EMA (``train: ema_decay``) is unchanged: ``net_g_ema`` stays an eager,
float32, contiguous copy, updated after every optimizer step.
"""
import functools
from collections import OrderedDict
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass

import torch

from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

#: what the entry points build for these ``model_type`` values (:func:`substitute_sr_model`): the plugin's models,
#: which take the training keys (and, for BasicSR's real-world models, run where ``self.device`` is, not only on CUDA)
MODEL_SUBSTITUTES = {'SRModel': 'PrecisionSRModel', 'RealESRNetModel_basicsr': 'RealSRConvNetModel',
                     'RealESRGANModel_basicsr': 'RealSRConvNetGANModel'}
#: the ``model_type`` values whose training the keys change
SR_MODEL_TYPES = (*MODEL_SUBSTITUTES, *dict.fromkeys(MODEL_SUBSTITUTES.values()))
#: top-level keys (bools) and their defaults
TOP_LEVEL_FLAGS = {'use_amp': False, 'amp_bf16': False, 'use_channels_last': False, 'use_compile': False}
#: the key in the first optimizer's state dict that holds the GradScaler state
SCALER_KEY = 'grad_scaler'


def compile_modes():
    """The ``mode`` values ``torch.compile`` accepts (``default`` and the inductor's mode table)."""
    from torch._inductor import list_mode_options
    return tuple(dict.fromkeys(['default', *list_mode_options()]))


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_options(opt):
    """Problems with the training keys this model reads (see the module docstring), one line each naming the key and
    the value at fault; ``[]`` if there are none. Called by the option collector
    (:func:`srconvnet_plugin.utils.checks.check_options`) for every option file."""
    problems = []
    train_opt = opt.get('train') or {}
    train_set = (opt.get('datasets') or {}).get('train') or {}
    given = {key: opt[key] for key in (*TOP_LEVEL_FLAGS, 'compile_mode') if opt.get(key) is not None}
    given.update({f'train: {key}': train_opt[key] for key in ('grad_clip', 'grad_clip_max_norm')
                  if train_opt.get(key) is not None})
    if train_set.get('accum_iter') is not None:
        given['datasets: train: accum_iter'] = train_set['accum_iter']
    for key, value in given.items():
        name = key.rsplit(': ', 1)[-1]
        if name in TOP_LEVEL_FLAGS or name == 'grad_clip':
            if not isinstance(value, bool):
                problems.append(f'{key}: {value!r} is not true or false')
        elif name == 'compile_mode':
            if value not in compile_modes():
                problems.append(f'{key}: {value!r} is not a torch.compile mode; use one of '
                                f'{", ".join(compile_modes())}')
        elif name == 'grad_clip_max_norm':
            if not _is_number(value) or not value > 0:
                problems.append(f'{key}: {value!r}: the max gradient norm must be a number > 0')
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f'{key}: {value!r}: accumulate over an integer number of batches >= 1')
    active = {key: value for key, value in given.items()
              if value is not False and not (key == 'compile_mode' and value == 'default')
              and not (key.endswith('accum_iter') and value == 1)}
    model_type = opt.get('model_type')
    if active and model_type not in SR_MODEL_TYPES:
        problems.append(f'model_type: {model_type}: {", ".join(active)} take(s) effect only for model_type: '
                        f'{", ".join(SR_MODEL_TYPES)}; remove them or train with one of those')
        return problems
    if opt.get('amp_bf16') is True and opt.get('use_amp') is not True:
        problems.append('amp_bf16: true does nothing without use_amp: true; add use_amp: true for bf16 '
                        'autocast (or remove amp_bf16 to train in fp32)')
    if opt.get('use_amp') is not True:
        return problems
    on_cuda = opt.get('num_gpu', 0) != 0 and torch.cuda.is_available()
    if opt.get('amp_bf16') is not True and not on_cuda:
        problems.append('use_amp: true without amp_bf16: true is fp16 autocast with a GradScaler, which needs '
                        'a CUDA GPU; this run trains on the CPU: add amp_bf16: true for bf16 autocast')
    elif opt.get('amp_bf16') is True and on_cuda and not torch.cuda.is_bf16_supported():
        problems.append(f'amp_bf16: true: {torch.cuda.get_device_name()} has no bfloat16; remove amp_bf16 for '
                        'fp16 autocast with a GradScaler')
    return problems


@dataclass(frozen=True)
class TrainingSettings:
    """The training keys of one option dict, with their defaults filled in (see the module docstring)."""
    amp_dtype: object = None  # torch.float16 / torch.bfloat16, None for fp32
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = 'default'
    grad_clip: bool = False
    grad_clip_max_norm: float = 1.0
    accum_iter: int = 1

    @classmethod
    def from_opt(cls, opt):
        """Read the keys from a parsed option dict (:func:`check_options` has refused bad values)."""
        train_opt = opt.get('train') or {}
        train_set = (opt.get('datasets') or {}).get('train') or {}
        amp_dtype = None
        if opt.get('use_amp'):
            amp_dtype = torch.bfloat16 if opt.get('amp_bf16') else torch.float16
        return cls(amp_dtype=amp_dtype, channels_last=bool(opt.get('use_channels_last')),
                   compile=bool(opt.get('use_compile')), compile_mode=opt.get('compile_mode') or 'default',
                   grad_clip=bool(train_opt.get('grad_clip')),
                   grad_clip_max_norm=float(train_opt.get('grad_clip_max_norm', 1.0)),
                   accum_iter=int(train_set.get('accum_iter') or 1))

    def describe_precision(self):
        """The log line naming the precision in effect."""
        if self.amp_dtype is torch.bfloat16:
            return 'mixed precision: bf16 autocast (no GradScaler; Fourier unit float32)'
        if self.amp_dtype is torch.float16:
            return 'mixed precision: fp16 autocast with GradScaler (Fourier unit float32)'
        return 'precision: fp32'

    def describe_rest(self):
        """The log line naming the other training keys in effect."""
        clip = f'max norm {self.grad_clip_max_norm:g}' if self.grad_clip else 'off'
        compiled = f'on (mode {self.compile_mode})' if self.compile else 'off'
        return (f'training: channels-last {"on" if self.channels_last else "off"}, torch.compile {compiled}, '
                f'gradient clipping {clip}, accum_iter {self.accum_iter}')


def to_channels_last(net):
    """Move the 4-D parameters and buffers of ``net`` to channels-last in place (``net.to(memory_format=...)``
    refuses SRConvNet's 5-D dynamic kernel banks; the 4-D conv weights are the ones the format is for)."""
    for tensor in list(net.parameters()) + list(net.buffers()):
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return net


@MODEL_REGISTRY.register()
class PrecisionSRModel(SRModel):
    """``SRModel`` + mixed precision, channels-last, torch.compile, gradient clipping and accumulation."""

    def __init__(self, opt):
        self.settings = TrainingSettings.from_opt(opt)
        self.grad_scaler = None
        super().__init__(opt)
        # the compiled forward is kept beside net_g: net_g stays the (DDP-wrapped) module that basicsr saves, loads,
        # prints and averages into net_g_ema, with its own parameter names; validation runs it eagerly
        self._train_forward = self.net_g
        if self.is_train and self.settings.compile:
            self._train_forward = torch.compile(self.net_g, mode=self.settings.compile_mode)
        if self.is_train:
            logger = get_root_logger()
            logger.info(self.settings.describe_precision())
            logger.info(self.settings.describe_rest())
            save_freq = (opt.get('logger') or {}).get('save_checkpoint_freq')
            if self.settings.accum_iter > 1 and isinstance(save_freq, int) and save_freq % self.settings.accum_iter:
                logger.warning(f'logger: save_checkpoint_freq: {save_freq} is not a multiple of datasets: train: '
                               f'accum_iter: {self.settings.accum_iter}: a state saved between two optimizer steps '
                               'holds no partial gradients, so after a resume the first step sums fewer batches')

    def model_to_device(self, net):
        """``BaseModel.model_to_device`` after the channels-last conversion (so DDP registers the converted weights)."""
        if self.settings.channels_last:
            net = to_channels_last(net.to(self.device))
        return super().model_to_device(net)

    def setup_optimizers(self):
        super().setup_optimizers()
        if self.settings.amp_dtype is torch.float16:
            self.grad_scaler = self.attach_grad_scaler(self.optimizer_g, 'GradScaler')

    def attach_grad_scaler(self, optimizer, name):
        """A GradScaler for ``optimizer`` whose state rides in the optimizer's state dict (key ``grad_scaler``), so
        basicsr's ``save_training_state`` (atomic under the plugin) writes it into the ``.state`` file and
        ``resume_training`` reads it back; ``name`` starts its log line on resume."""
        scaler = torch.amp.GradScaler(self.device.type)

        def save(_optimizer, state_dict):
            state_dict[SCALER_KEY] = scaler.state_dict()
            return state_dict

        def load(_optimizer, state_dict):
            scaler_state = state_dict.pop(SCALER_KEY, None)
            if scaler_state is None:
                get_root_logger().info(f'{name}: the resumed training state has none (trained without fp16); '
                                       f'starting from scale {scaler.get_scale():g}')
            else:
                scaler.load_state_dict(scaler_state)
                get_root_logger().info(f'{name}: resumed at scale {scaler.get_scale():g}')
            return state_dict

        optimizer.register_state_dict_post_hook(save)
        optimizer.register_load_state_dict_pre_hook(load)
        return scaler

    def autocast(self):
        """The autocast context of the settings (a no-op for fp32)."""
        if self.settings.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.settings.amp_dtype)

    def feed_data(self, data):
        super().feed_data(data)
        if self.settings.channels_last:
            self.lq = self.lq.contiguous(memory_format=torch.channels_last)
            if hasattr(self, 'gt'):
                self.gt = self.gt.contiguous(memory_format=torch.channels_last)

    def is_step(self, current_iter):
        """Whether the optimizers step at ``current_iter`` (every ``accum_iter`` batches)."""
        return current_iter % self.settings.accum_iter == 0

    @staticmethod
    def accumulating(step, *nets):
        """DDP: no gradient all-reduce of ``nets`` on the batches that only accumulate (``step`` false)."""
        stack = ExitStack()
        for net in nets:
            no_sync = getattr(net, 'no_sync', None)
            if no_sync is not None and not step:
                stack.enter_context(no_sync())
        return stack

    def backward(self, loss, scaler=None):
        """Backward of ``loss`` divided by ``accum_iter``, scaled by ``scaler`` (fp16) when there is one."""
        accum = self.settings.accum_iter
        loss = loss / accum if accum > 1 else loss
        (scaler.scale(loss) if scaler is not None else loss).backward()

    def step(self, optimizer, scaler=None, clip=None):
        """One optimizer step: the gradient norm of the network ``clip`` clipped first (``grad_clip``; fp16: after
        unscaling), through ``scaler`` when there is one; the gradients are then dropped."""
        if clip is not None and self.settings.grad_clip:
            if scaler is not None:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(clip.parameters(), self.settings.grad_clip_max_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def optimize_parameters(self, current_iter):
        step = self.is_step(current_iter)
        with self.accumulating(step, self.net_g):
            with self.autocast():
                self.output = self._train_forward(self.lq)
                l_total, loss_dict = self.losses(self.output, self.gt)
            self.backward(l_total, self.grad_scaler)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if not step:
            return
        self.step(self.optimizer_g, self.grad_scaler, clip=self.net_g)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def losses(self, output, gt, percep_gt=None, prefix='l_'):
        """``SRModel``'s pixel and perceptual losses: ``(total, OrderedDict of the terms)``; the perceptual loss
        compares with ``percep_gt`` when given (Real-ESRGAN's sharpened GT), the terms are named ``<prefix>pix`` ..."""
        l_total = 0
        loss_dict = OrderedDict()
        if self.cri_pix:
            loss_dict[f'{prefix}pix'] = self.cri_pix(output, gt)
            l_total += loss_dict[f'{prefix}pix']
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(output, gt if percep_gt is None else percep_gt)
            for name, value in ((f'{prefix}percep', l_percep), (f'{prefix}style', l_style)):
                if value is not None:
                    loss_dict[name] = value
                    l_total += value
        return l_total, loss_dict

    def test(self):
        """``SRModel.test`` under the training autocast; the output is float32 again for the metrics and images."""
        with self.autocast():
            super().test()
        self.output = self.output.float()


def substitute_sr_model(_orig):
    """Wrap ``basicsr.train.build_model``: ``model_type: SRModel`` is built as :class:`PrecisionSRModel`, BasicSR's
    ``RealESRNetModel_basicsr`` / ``RealESRGANModel_basicsr`` as the plugin's ``RealSRConvNetModel`` /
    ``RealSRConvNetGANModel`` (:data:`MODEL_SUBSTITUTES`)."""

    @functools.wraps(_orig)
    def build_model(opt):
        if opt.get('model_type') in MODEL_SUBSTITUTES:  # (basicsr's build_model deep-copies opt anyway)
            opt = dict(opt, model_type=MODEL_SUBSTITUTES[opt['model_type']])
        return _orig(opt)

    return build_model
