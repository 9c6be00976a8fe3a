"""The fast forward paths of SRConvNet compute the same function as each other and as the authors' reference.

Paths: with autograd (everything out of place), without autograd (in place, upsampler/tail in row strips), oneDNN's
fused float32 CPU kernels, channels-last inputs. Correctness only: nothing here is timed.
"""
import pytest
import torch

import srconvnet_plugin.archs.srconvnet_arch as arch
from srconvnet_plugin.archs.srconvnet_arch import SRConvNet


def tiny(scale, dtype=torch.float64):
    """A small SRConvNet whose every branch matters: layer_scale ~ N(0, 1), biases and norm weights perturbed."""
    torch.manual_seed(scale)
    model = SRConvNet(num_feat=16, num_block=2, num_heads=4, num_kernels=4, upscale=scale).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('layer_scale'):
                p.normal_()
            elif name.endswith('bias') or name.endswith('norm.weight'):
                p.add_(0.1 * torch.randn_like(p))
    return model


def golden_srconvnet(golden):
    """A float64 SRConvNet in eval mode with a golden file's config and weights (MeanShift values dropped)."""
    cfg = golden['config']
    model = SRConvNet(num_feat=cfg['dim'], num_block=cfg['num_blocks'], num_heads=cfg['num_heads'],
                      num_kernels=cfg['num_kernels'], upscale=cfg['scale']).double().eval()
    state = {k: v for k, v in golden['state_dict'].items() if not k.startswith(('sub_mean.', 'add_mean.'))}
    model.load_state_dict(state, strict=True)
    return model


def test_autograd_path_reproduces_golden(golden_dir):
    """The out-of-place path (taken whenever autograd records) matches the reference in float64."""
    golden = torch.load(golden_dir / 'srconvnet_x3_small_b.pt', weights_only=True)
    model = golden_srconvnet(golden)
    x = (golden['input'] / 255.).requires_grad_()
    out = model(x) * 255.
    assert out.requires_grad
    assert (out.detach() - golden['output']).abs().max().item() < 1e-8


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('shape', [(1, 1, 1), (1, 2, 2), (2, 5, 7), (3, 9, 4)])
def test_inference_path_equals_autograd_path(scale, shape):
    model = tiny(scale)
    x = torch.rand(shape[0], 3, *shape[1:], dtype=torch.float64)
    with torch.enable_grad():
        ref = model(x)
    assert ref.requires_grad  # the out-of-place path was taken
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (shape[0], 3, shape[1] * scale, shape[2] * scale)
    assert (out - ref.detach()).abs().max().item() < 1e-10


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_tail_strips_equal_whole_image(scale, monkeypatch):
    """Row strips of one LR row each (every strip border inside the image) give the whole-image result."""
    model = tiny(scale)
    x = torch.rand(2, 3, 7, 6, dtype=torch.float64)
    with torch.inference_mode():
        whole = model(x)
        monkeypatch.setattr(arch, 'STRIP_ELEMENTS', 1)
        strips = model(x)
    assert (strips - whole).abs().max().item() < 1e-10


def test_channels_last_input_and_weights_equal_contiguous():
    model = tiny(4)
    x = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    with torch.inference_mode():
        ref = model(x)
        # model.to(memory_format=...) refuses the 5-D kernel banks; the conv weights are what it would change
        for p in model.parameters():
            if p.dim() == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    assert (out - ref).abs().max().item() < 1e-10


@pytest.mark.parametrize('scale, width', [(2, 8), (4, 8), (3, 34)])
def test_fused_onednn_float32_path_matches_plain_path(scale, width, monkeypatch):
    """float32 without autograd runs oneDNN's fused kernels; they agree with the plain path to float32 rounding.
    At width 34 the body runs in strips of 4 rows and its FFT along W in two stages (``real_dft``)."""
    model64 = tiny(scale)
    model = tiny(scale, torch.float32)
    x = torch.rand(2, 3, 11, width)
    monkeypatch.setattr(arch, 'BODY_STRIP_ELEMENTS', 4 * width * 2 * 16)
    with torch.inference_mode():
        assert arch._fused(x)  # the fused path is the one under test
        fused = model(x)
        with torch.backends.mkldnn.flags(enabled=False):
            assert not arch._fused(x)
            plain = model(x)
        exact = model64(x.double())
    # this model's N(0, 1) layer_scale makes float32 itself lose about 1e-3; the fused kernels must not lose more
    err_plain = (plain.double() - exact).abs().max().item()
    assert (fused.double() - exact).abs().max().item() <= 1.5 * err_plain + 1e-6
    assert (fused - plain).abs().max().item() <= 2 * err_plain + 1e-6


def test_fused_path_keeps_samples_independent():
    model = tiny(3, torch.float32)
    x = torch.rand(3, 3, 9, 7)
    with torch.inference_mode():
        batched = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert (batched - single).abs().max().item() < 1e-5


def test_no_fused_kernels_when_autograd_or_autocast_is_on():
    x = torch.rand(1, 3, 4, 4)
    with torch.enable_grad():
        assert not arch._fused(x)
    with torch.inference_mode():
        assert not arch._fused(x.double())
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert not arch._fused(x)


def test_autocast_bfloat16_batch():
    """Under CPU bf16 autocast (the plain path, FFTs in float32) a batch stays close to float32."""
    model = tiny(2, torch.float32)
    x = torch.rand(2, 3, 10, 9)
    with torch.inference_mode():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    assert out.shape == ref.shape
    assert (out.float() - ref).abs().max().item() < 0.05


@pytest.mark.parametrize('name', ['srconvnet_x4_small_a.pt', 'srconvnet_x3_small_b.pt'])
def test_strip_wise_body_reproduces_golden(name, golden_dir):
    """Inference on CPU runs the body strip by strip (``body_in_strips``); in float64 it matches the reference."""
    golden = torch.load(golden_dir / name, weights_only=True)
    model = golden_srconvnet(golden)
    x = golden['input'] / 255.
    with torch.inference_mode():
        assert arch._strips(x, model.blocks)
        out = model(x) * 255.
    assert (out - golden['output']).abs().max().item() < 1e-8


@pytest.mark.parametrize('width', [10, 34])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_body_strips_of_one_row_and_one_column_equal_whole_map(dtype, width, monkeypatch):
    """Strips of one row (every row a strip border; softmax from per-row maxima) and FFT column strips of one
    frequency (or padding slot: 34 takes the two-stage DFT) give the result of a single strip."""
    model = tiny(2, dtype)
    x = torch.rand(2, 3, 9, width, dtype=dtype)
    with torch.inference_mode():
        whole = model(x)
        monkeypatch.setattr(arch, 'BODY_STRIP_ELEMENTS', 1)
        strips = model(x)
    assert (strips - whole).abs().max().item() < (1e-10 if dtype == torch.float64 else 1e-4)


def test_forward_hooks_in_the_body_see_every_module():
    """A forward hook on a module of the body switches to the module-by-module schedule: it fires, once per
    forward, with the whole batch, and the output does not change."""
    model = tiny(3)
    x = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    with torch.inference_mode():
        assert arch._strips(x, model.blocks)
        plain = model(x)
        seen = []
        handle = model.blocks[1].ffn.register_forward_hook(lambda m, i, o: seen.append(o.shape))
        try:
            assert not arch._strips(x, model.blocks)
            hooked = model(x)
        finally:
            handle.remove()
    assert seen == [(2, 16, 6, 5)]
    assert (hooked - plain).abs().max().item() < 1e-10


@pytest.mark.parametrize('width', [34, 51])
def test_strip_wise_body_with_two_stage_dft_matches_reference(width, golden_dir):
    """At widths whose FFT runs as two matrix products (``real_dft``: 34 = 2·17, 51 = 3·17) the strip-wise body
    matches the reference's operations in float64."""
    golden = torch.load(golden_dir / 'srconvnet_x4_small_a.pt', weights_only=True)
    model = golden_srconvnet(golden)
    torch.manual_seed(0)
    x = torch.rand(1, 3, 11, width, dtype=torch.float64)
    with torch.inference_mode():
        assert arch._strips(x, model.blocks)
        out = model(x)
        with arch.reference_forward():
            ref = model(x)
    assert (out - ref).abs().max().item() < 1e-10
