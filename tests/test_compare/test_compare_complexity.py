"""MAC counting: mmengine's counter, the handles for what it misses, and parameters of every preset."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from basicsr.archs import build_network
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet_plugin.compare import (PRESETS, SPANDREL_PRESETS, available_archs, construct, input_channels,
                                      opt_for_scale, size_rule)
from srconvnet_plugin.measure.complexity import count_complexity, reparameterised_params, thop_counts

pytestmark = pytest.mark.usefixtures('one_thread')  # see tests/conftest.py


@pytest.mark.slow
def test_srconvnet_x4_at_720p_matches_the_spec_table():
    """SPEC.md: 24.05 G MACs by the counter at a 1280×720 output (LR 180×320), 25.28 G with FFT and products."""
    c = count_complexity(SRConvNet(upscale=4).eval(), (3, 180, 320))
    assert c.params == 1_007_491
    assert round(c.macs / 1e9, 2) == 24.05
    assert c.total_macs / 1e9 == pytest.approx(25.28, abs=0.01)
    # the extra part is exactly 16 FFTs of 64 channels at 1.25·N·log2 N plus 2 products per element and block
    n = 180 * 320
    assert c.by_operator['fft'] == pytest.approx(8 * 2 * 64 * 1.25 * n * math.log2(n), rel=1e-6)
    assert c.by_operator['elementwise_product'] == 8 * 2 * 64 * n
    # what is not a MAC is reported, not dropped: norms, GELU, softmax, additions
    for op in ('other:layer_norm', 'other:gelu', 'other:softmax', 'other:add'):
        assert c.by_operator[op] > 0
    assert c.unsupported == {}


@pytest.mark.slow
def test_thop_counts_srconvnet_x4_as_the_authors_network_is_commonly_reported():
    """thop 0.1.1 on the authors' SRConvNet (default configuration, 720p output): 382.8K params / 21.86G MACs.

    The same counter on this network must find the same standard layers: all of the convolutions' parameters, none
    of the kernel banks, norms and layer scales (624.7K of the 1,007.5K), and the MACs of the layers called as
    modules only. The one difference: the 16 kernel attentions pool with ``F.adaptive_avg_pool2d`` here and with an
    ``nn.AdaptiveAvgPool2d`` module in the authors' code, which thop counts as (H·W + 1) operations per channel.
    """
    model = SRConvNet(upscale=4).eval()
    keys = list(model.state_dict())
    params, macs = thop_counts(model, (3, 180, 320))
    assert round(params / 1e3, 1) == 382.8
    assert macs == pytest.approx(21.86e9, rel=0.005)
    pooling = 16 * 64 * (180 * 320 + 1)  # what thop adds for the authors' pooling modules
    assert round((macs + pooling) / 1e9, 2) == 21.86
    assert params < sum(p.numel() for p in model.parameters())
    assert list(model.state_dict()) == keys  # thop's buffers went to a copy


@pytest.mark.parametrize('name', list(available_archs()))
@pytest.mark.slow
def test_params_of_every_preset_equal_the_sum_of_its_tensors(name):
    opt = opt_for_scale(available_archs()[name], 4)
    model = construct(opt).eval()
    # a small input: parameters do not depend on it (16×16 is a size every preset accepts as it is)
    assert size_rule(opt).padded((16, 16)) == (16, 16)
    c = count_complexity(model, (input_channels(opt), 16, 16))
    assert c.params == sum(p.numel() for p in model.parameters())
    assert c.macs > 0


def test_spandrel_presets_are_spandrels_classes_with_spandrels_size_rules():
    """Each spandrel preset is built from ``spandrel.architectures.<Name>.<Name>``; spandrel's own loader, given the
    built model's weights, finds the same arch, scale and size requirements as the preset's ``size_rule``."""
    import importlib

    assert set(SPANDREL_PRESETS) >= {'SAFMN', 'SPAN', 'OmniSR', 'PLKSR-tiny', 'Compact', 'SwinIR-light-spandrel'}
    for name, preset in SPANDREL_PRESETS.items():
        opt = opt_for_scale(preset, 3)
        arch_name = opt['type'].split('.', 1)[1]
        package = importlib.import_module(f'spandrel.architectures.{arch_name}')
        model = construct(opt)
        assert type(model) is getattr(package, arch_name)
        descriptor = getattr(package, f'{arch_name}Arch')().load(model.state_dict())
        assert descriptor.scale == 3
        assert type(descriptor.model) is type(model)
        rule, wanted = size_rule(opt), descriptor.size_requirements
        assert (rule.minimum, rule.multiple) == (wanted.minimum, wanted.multiple_of), name
        for size in ((16, 16), (17, 23), (5, 40)):
            pad_w, pad_h = wanted.get_padding(size[1], size[0])
            assert rule.padded(size) == (size[0] + pad_h, size[1] + pad_w), (name, size)


def test_presets_have_the_published_sizes():
    """EDSR-baseline and MSRResNet ×4 are 1.52 M, SwinIR-light ×4 897 K plus its 24 bias tables of 15²·6."""
    sizes = {name: sum(p.numel() for p in build_network(opt_for_scale(PRESETS[name], 4)).parameters())
             for name in ('EDSR-baseline', 'MSRResNet', 'SwinIR-light', 'SRVGGNetCompact')}
    assert sizes['EDSR-baseline'] == 1_517_571
    assert sizes['MSRResNet'] == 1_517_571
    assert round((sizes['SwinIR-light'] - 24 * 15**2 * 6) / 1e3) == 897
    assert round(sizes['SRVGGNetCompact'] / 1e3) == 1213  # realesr-general-x4v3


class _Attention(nn.Module):

    def forward(self, x):
        q = x.view(2, 4, 50, 8)  # B, heads, L, E
        return F.scaled_dot_product_attention(q, q[:, :, :30], q[:, :, :30, :6])


class _Fourier(nn.Module):

    def forward(self, x):
        return torch.fft.irfft2(torch.fft.rfft2(x, norm='ortho'), s=x.shape[-2:], norm='ortho')


class _Gate(nn.Module):

    def forward(self, x):
        return (x * x.sigmoid()) * 0.5


def test_handles_for_what_mmengine_counts_as_zero():
    sdpa = count_complexity(_Attention(), (100, 4, 8))
    assert sdpa.macs == 0
    assert sdpa.macs_extra == 2 * 4 * 50 * 30 * (8 + 6)  # Q·Kᵀ plus attn·V

    fft = count_complexity(_Fourier(), (5, 12, 16))
    n = 12 * 16
    assert fft.macs_extra == pytest.approx(2 * 5 * 1.25 * n * math.log2(n), abs=2)

    gate = count_complexity(_Gate(), (3, 10, 10))
    assert gate.macs_extra == 300  # x · sigmoid(x): one product per element
    assert gate.by_operator == {'elementwise_product': 300, 'other:mul': 300, 'other:sigmoid': 300}
    assert gate.other_ops == 600


def test_spandrel_presets_have_the_published_sizes():
    """×4 as their papers report: SAFMN 240 K, Compact 64/16 621 K; SPAN-48 426 K and Omni-SR 792 K in the form
    thop counts (SPAN's deployed 3×3 convs without the training branches it also holds, Omni-SR without its
    position-bias embeddings)."""
    models = {name: construct(opt_for_scale(SPANDREL_PRESETS[name], 4)).eval()
              for name in ('SAFMN', 'Compact', 'SPAN', 'OmniSR')}
    params = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
    assert round(params['SAFMN'] / 1e3) == 240
    assert round(params['Compact'] / 1e3) == 621
    assert round(thop_counts(models['SPAN'], (3, 16, 16))[0] / 1e3) == 426 < params['SPAN'] / 1e3
    assert round(thop_counts(models['OmniSR'], (3, 16, 16))[0] / 1e3) == 792 < params['OmniSR'] / 1e3


def test_layer_norm_of_any_rank_is_estimated_as_mmengine_does():
    """mmengine's layer-norm handle stops at 5 dimensions; OmniSR normalises 6-dimensional windows."""
    norm = nn.LayerNorm(8)
    six_dims = count_complexity(norm, (2, 3, 4, 5, 8))  # (1, 2, 3, 4, 5, 8) after the batch dimension
    assert six_dims.by_operator == {'other:layer_norm': 5 * 2 * 3 * 4 * 5 * 8}
    plain = count_complexity(nn.LayerNorm(8, elementwise_affine=False), (4, 8))
    assert plain.by_operator == {'other:layer_norm': 4 * 4 * 8}


def test_ecbsr_deployed_params_fold_the_branches_into_3x3_convs():
    """ECBSR-M4C16 ×4 once re-parameterised: 1→16, 4 × 16→16 (with PReLU), 16→16 linear, each a 3×3 conv + bias."""
    model = build_network(opt_for_scale(PRESETS['ECBSR'], 4)).eval()
    expected = (16 * 9 + 16 + 16) + 4 * (16 * 16 * 9 + 16 + 16) + (16 * 16 * 9 + 16)
    assert reparameterised_params(model) == expected == 11_840
    assert sum(p.numel() for p in model.parameters()) > expected
    assert reparameterised_params(SRConvNet(num_feat=16, num_block=1, num_heads=4, num_kernels=4)) is None
