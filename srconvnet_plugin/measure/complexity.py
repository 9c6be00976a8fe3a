"""Parameters and multiply-accumulates (MACs) of an SR network, counted the way SR papers count Multi-Adds.

``count_complexity(model, input_shape)`` traces the model once with ``mmengine.analysis.FlopAnalyzer`` and splits the
counts into three parts, so that nothing is silently dropped:

``macs``
    mmengine's own multiply-accumulate handles: convolutions (also ``F.conv2d`` with runtime weights),
    linear/matmul/bmm/einsum, pooling and interpolation. Bias additions are not counted (mmengine's convention).
    This is the number SR papers call Multi-Adds.
``macs_extra``
    What mmengine counts as zero although it is real arithmetic at a model's core, added by handles here:
    ``rfft2``/``irfft2`` (and the other FFTs) at 1.25·N·log2(N) MACs per channel and real transform (the usual
    2.5·N·log2(N) real FLOPs, halved into multiply-accumulates; a complex transform costs twice that),
    ``scaled_dot_product_attention`` (the two batched matrix products, L·S·(E + Ev) per head) and elementwise
    products of two tensors (``a * v`` gating, attention modulation; one MAC per output element).
    ``macs + macs_extra`` is the complete multiply-accumulate count.
``other_ops``
    The remainder that is not a multiply-accumulate: normalisation layers (mmengine's 5 operations per element),
    activations, softmax, residual additions, scalar rescaling. Estimated as one operation per output element
    (normalisation: mmengine's estimate), reported per operator, never added to the MACs.

Operators that move data only (pixel shuffle, padding, ``view_as_real``...) cost nothing. Any operator this module
does not know is listed in ``unsupported`` by name, so the report says what was not counted.

``thop_counts(model, input_shape)`` gives the counts "as commonly reported" beside these: ``thop.profile``, the
counter most SR papers quote, which counts only the parameters and MACs of the standard layers it has rules for
(``nn.Conv2d``, ``nn.Linear``, norms, pooling...) when they are called as modules. Parameters held by other modules
(SRConvNet's kernel banks) and arithmetic outside such layers (dynamic convs with runtime weights, FFTs, products)
are missing from its numbers: for SRConvNet ×4 at 720p output, 382.8K / 21.80G against 1,007.5K / 24.05G here
(thop on the authors' code: 382.8K / 21.86G, the 0.06G being its pooling modules, functional here).

Example::

    >>> from srconvnet.archs.srconvnet_arch import SRConvNet
    >>> c = count_complexity(SRConvNet(upscale=4).eval(), (3, 180, 320))
    >>> round(c.macs / 1e9, 2), round(c.total_macs / 1e9, 2)
    (24.05, 25.28)
"""
import copy
import math
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape

# mmengine's default handles whose counts are multiply-accumulates (the SR papers' Multi-Adds)
MAC_OPERATORS = frozenset({
    'conv', 'linear', 'addmm', 'bmm', 'matmul', 'mm', 'einsum', 'adaptive_avg_pool2d', 'upsample_bilinear2d',
    'upsample_nearest2d', 'grid_sampler'
})
# keys written by this module's handles for the arithmetic mmengine misses
FFT_KEY = 'fft'
SDPA_KEY = 'scaled_dot_product_attention'
PRODUCT_KEY = 'elementwise_product'
EXTRA_OPERATORS = frozenset({FFT_KEY, SDPA_KEY, PRODUCT_KEY})
OTHER_PREFIX = 'other:'

# operator -> which side is real: a complex-to-complex transform costs twice a real one
_FFT_OPS = {
    'aten::fft_rfft2': 'real_in',
    'aten::fft_rfftn': 'real_in',
    'aten::fft_rfft': 'real_in',
    'aten::fft_irfft2': 'real_out',
    'aten::fft_irfftn': 'real_out',
    'aten::fft_irfft': 'real_out',
    'aten::fft_fft2': 'complex',
    'aten::fft_ifft2': 'complex',
    'aten::fft_fftn': 'complex',
    'aten::fft_ifftn': 'complex',
    'aten::fft_fft': 'complex',
    'aten::fft_ifft': 'complex',
}
# non-MAC arithmetic, estimated as one operation per output element
_ELEMENTWISE_OPS = ('add', 'add_', 'sub', 'sub_', 'rsub', 'div', 'div_', 'gelu', 'gelu_', 'sigmoid', 'sigmoid_',
                    'softmax', 'log_softmax', 'prelu', 'leaky_relu', 'leaky_relu_', 'silu', 'silu_', 'tanh', 'tanh_',
                    'hardtanh', 'hardtanh_', 'elu', 'elu_', 'exp', 'sqrt', 'rsqrt', 'pow', 'mean', 'sum', 'neg',
                    'abs', 'reciprocal', 'lerp', 'clamp_min', 'clamp_max', 'addcmul')
# mmengine's normalisation handles (about 5 operations per element): kept, but reported with the other ops
_NORM_OPERATORS = ('layer_norm', 'batch_norm', 'group_norm', 'instance_norm')
# operators that only move or reinterpret data, and comparisons (mmengine ignores eq/gt/ge likewise)
_ZERO_COST_OPS = ('aten::pixel_shuffle', 'aten::pixel_unshuffle', 'aten::view_as_real', 'aten::view_as_complex',
                  'aten::repeat_interleave', 'aten::repeat', 'aten::reflection_pad2d', 'aten::replication_pad2d',
                  'aten::pad', 'aten::expand_as', 'aten::flip', 'aten::clone', 'aten::real', 'aten::imag',
                  'aten::as_strided', 'aten::fill_', 'aten::zero_', 'aten::ones_like', 'aten::channel_shuffle',
                  'aten::unfold', 'aten::im2col', 'aten::col2im', 'aten::linspace', 'aten::meshgrid',
                  'aten::empty_like', 'aten::masked_fill_', 'aten::lift_fresh', 'aten::alias', 'aten::ne', 'aten::lt',
                  'aten::le', 'aten::logical_and', 'aten::logical_or')


@dataclass
class Complexity:
    """Counts for one model at one input shape (all numbers are plain ints; MACs, not FLOPs).

    Attributes:
        params (int): parameters, from ``mmengine.analysis.parameter_count``.
        macs (int): multiply-accumulates counted by mmengine's own handles (convs, linear/matmul, pooling,
            interpolation): the SR papers' Multi-Adds.
        macs_extra (int): multiply-accumulates mmengine misses, counted here: FFTs, scaled-dot-product attention,
            elementwise products of two tensors.
        other_ops (int): non-MAC operations (norms, activations, softmax, additions, scalar scaling), about one per
            output element; reported, not added.
        by_operator (dict): every count above split by operator (``other:*`` keys make up ``other_ops``).
        unsupported (dict): operators neither counted nor estimated, with how often they ran.
        input_shape (tuple): the (C, H, W) input that was traced.
    """
    params: int
    macs: int
    macs_extra: int
    other_ops: int
    by_operator: dict = field(default_factory=dict)
    unsupported: dict = field(default_factory=dict)
    input_shape: tuple = ()

    @property
    def total_macs(self):
        """``macs + macs_extra``: every multiply-accumulate, including those mmengine counts as zero."""
        return self.macs + self.macs_extra

    def as_dict(self):
        """JSON-friendly dict including ``total_macs``."""
        out = asdict(self)
        out['input_shape'] = list(self.input_shape)
        out['total_macs'] = self.total_macs
        return out


def _numel(shape):
    return math.prod(shape) if shape is not None else 0


def _const(value):
    """Python value of a constant jit input (None if it is not a constant)."""
    node = value.node()
    if node.kind() == 'prim::ListConstruct':  # e.g. the ``dim`` list of an FFT over given axes
        items = [_const(v) for v in node.inputs()]
        return None if None in items else items
    try:
        return value.toIValue()
    except Exception:  # a tensor computed at run time
        return None


def fft_mac_handle(op_name):
    """Handle for one ``aten::fft_*`` operator: 1.25·N·log2(N) MACs per real transform of N points per channel."""
    kind = _FFT_OPS[op_name]
    default_dims = 2 if '2' in op_name else (1 if op_name.endswith(('fft', 'ifft')) else None)

    def handle(inputs, outputs):
        # the signal is the real side of the transform (its full size), or the complex input of a c2c transform
        shape = get_shape(outputs[0] if kind == 'real_out' else inputs[0])
        if not shape:
            return Counter()
        dims = _const(inputs[2]) if len(inputs) > 2 else None
        if isinstance(dims, int):
            dims = [dims]
        if not dims:
            dims = list(range(-(default_dims or len(shape)), 0))
        n = _numel([shape[d] for d in dims])
        channels = _numel(shape) // max(n, 1)
        macs = 1.25 * n * math.log2(n) * channels if n > 1 else 0
        if kind == 'complex':
            macs *= 2
        return Counter({FFT_KEY: int(round(macs))})

    return handle


def sdpa_mac_handle(inputs, outputs):
    """Handle for ``aten::scaled_dot_product_attention``: Q·Kᵀ (L·S·E) plus attn·V (L·S·Ev) per batch and head."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    if not (q and k and v):
        return Counter()
    rows = _numel(q[:-1])  # batch · heads · L
    return Counter({SDPA_KEY: rows * k[-2] * (q[-1] + v[-1])})


def mul_handle(inputs, outputs):
    """Handle for ``aten::mul``: a product of two tensors is a MAC per output element, scalar scaling is other."""
    shapes = [get_shape(t) for t in inputs[:2]]
    out = _numel(get_shape(outputs[0]))
    if out <= 1:  # integer arithmetic on sizes recorded by the tracer
        return Counter()
    if all(s is not None and _numel(s) > 1 for s in shapes):
        return Counter({PRODUCT_KEY: out})
    return Counter({OTHER_PREFIX + 'mul': out})


def elementwise_handle(name):
    """Handle estimating a non-MAC operator as one operation per output element, kept apart from the MACs."""

    def handle(inputs, outputs):
        out = _numel(get_shape(outputs[0]))
        return Counter({OTHER_PREFIX + name: out}) if out > 1 else Counter()

    return handle


def layer_norm_handle(inputs, outputs):
    """mmengine's estimate for ``aten::layer_norm`` (5 operations per element with an affine part, else 4) at any
    rank: mmengine's own handle stops at 5 dimensions, OmniSR normalises 6-dimensional window tensors."""
    return Counter({'layer_norm': _numel(get_shape(inputs[0])) * (5 if get_shape(inputs[2]) is not None else 4)})


def make_analyzer(model, inputs):
    """``FlopAnalyzer`` for ``model(*inputs)`` with this module's handles added to mmengine's defaults."""
    analyzer = FlopAnalyzer(model, inputs)
    handles = {name: fft_mac_handle(name) for name in _FFT_OPS}
    handles['aten::scaled_dot_product_attention'] = sdpa_mac_handle
    handles['aten::mul'] = mul_handle
    handles['aten::mul_'] = mul_handle
    handles['aten::layer_norm'] = layer_norm_handle
    handles.update({f'aten::{name}': elementwise_handle(name.rstrip('_')) for name in _ELEMENTWISE_OPS})
    handles.update({name: None for name in _ZERO_COST_OPS})
    analyzer.set_op_handle(**handles)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
    return analyzer


def count_complexity(model, input_shape, device='cpu'):
    """Count parameters and MACs of ``model`` for one input of shape ``input_shape`` = (C, H, W).

    The model is traced once under ``torch.no_grad()`` on ``device`` (in its current train/eval mode: call
    ``model.eval()`` first, which matters for re-parameterised nets such as ECBSR). Returns a ``Complexity``.
    """
    inputs = (torch.rand(1, *input_shape, device=device), )
    with torch.no_grad():
        analyzer = make_analyzer(model, inputs)
        by_operator = Counter(analyzer.by_operator())
        unsupported = dict(analyzer.unsupported_ops())
    macs = extra = other = 0
    for name, count in by_operator.items():
        if name in MAC_OPERATORS:
            macs += count
        elif name in EXTRA_OPERATORS:
            extra += count
        else:  # our elementwise estimates and mmengine's normalisation counts
            other += count
    by_operator = {(OTHER_PREFIX + k if k in _NORM_OPERATORS else k): int(v) for k, v in by_operator.items()}
    return Complexity(
        params=int(parameter_count(model)['']),
        macs=int(macs),
        macs_extra=int(extra),
        other_ops=int(other),
        by_operator=dict(sorted(by_operator.items())),
        unsupported=dict(sorted(unsupported.items())),
        input_shape=tuple(input_shape))


class _ModuleForwards(nn.Module):
    """``model(x)`` with autograd on but nothing requiring a gradient (so nothing is recorded): what runs is the
    modules' own forwards, which thop hooks, rather than a fast path taken under ``no_grad`` (``thop.profile`` runs
    the model under ``no_grad``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model.requires_grad_(False)

    def forward(self, x):
        with torch.enable_grad():
            return self.model(x)


def thop_counts(model, input_shape, device='cpu'):
    """``(params, macs)`` of ``model`` for one ``(C, H, W)`` input, as ``thop.profile`` counts them (ints).

    A subclass of a layer thop has a rule for (say a 1×1 ``nn.Conv2d`` computed as a matrix product) is counted by
    that rule, as the standard layer it stands for. A deep copy is profiled: thop leaves ``total_ops`` and
    ``total_params`` buffers on every module it visits, which would change ``model.state_dict()``.
    """
    import thop
    from thop.profile import register_hooks

    probe = _ModuleForwards(copy.deepcopy(model))
    custom_ops = {}
    for module in probe.modules():
        kind = type(module)
        base = next((b for b in kind.__mro__ if b in register_hooks), None)
        if base is not None and base is not kind:
            custom_ops[kind] = register_hooks[base]
    inputs = (torch.rand(1, *input_shape, device=device), )
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='This API is being deprecated')  # thop about its own helpers
        macs, params = thop.profile(probe, inputs=inputs, custom_ops=custom_ops, verbose=False)
    return int(round(params)), int(round(macs))


def reparameterised_params(model):
    """Parameters of the deployed form of a net with re-parameterisable blocks; None if it has none.

    A block with a ``rep_params()`` method returning ``(weight, bias)`` (ECBSR's ``ECB``: five branches folded into
    one 3×3 conv) counts as that weight and bias plus its activation's parameters; everything else as it is.
    Papers report this form for such nets, while ``model.parameters()`` holds the training-time branches.
    """
    folded, total = [], 0
    for name, module in model.named_modules():
        if not name or any(name.startswith(p + '.') for p in folded) or not hasattr(module, 'rep_params'):
            continue
        with torch.no_grad():
            weight, bias = module.rep_params()
        act = getattr(module, 'act', None)
        total += weight.numel() + bias.numel()
        total += sum(p.numel() for p in act.parameters()) if isinstance(act, nn.Module) else 0
        folded.append(name)
    if not folded:
        return None
    return total + sum(p.numel() for n, p in model.named_parameters() if not any(n.startswith(f + '.') for f in folded))
