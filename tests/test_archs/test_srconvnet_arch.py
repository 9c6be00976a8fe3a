"""SRConvNet computes exactly what the authors' implementation computes (goldens in tests/data/golden)."""
import pytest
import torch

from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from srconvnet import engine
from srconvnet.archs.srconvnet_arch import SRConvNet, count_parameters
from srconvnet.convert import convert

GOLDENS = ['srconvnet_x4_small_a.pt', 'srconvnet_x3_small_b.pt']


def small(upscale=4, **kw):
    return SRConvNet(num_feat=16, num_block=2, num_heads=4, num_kernels=4, upscale=upscale, **kw)


def golden_model(golden, tmp_path):
    """Write the golden weights as an authors' training checkpoint, convert them, and load the result strictly."""
    authors = {
        'epoch': 1000,
        'model_state_dict': {f'module.{k}': v for k, v in golden['state_dict'].items()},
        'optimizer_state_dict': {},
        'scheduler_state_dict': {},
        'stat_dict': {},
    }
    torch.save(authors, tmp_path / 'model_x_latest.pt')
    config = convert(tmp_path / 'model_x_latest.pt', tmp_path / 'net_g.pth')
    cfg = golden['config']
    assert config == {
        'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': cfg['dim'], 'num_block': cfg['num_blocks'],
        'num_heads': cfg['num_heads'], 'num_kernels': cfg['num_kernels'], 'upscale': cfg['scale']}
    model = SRConvNet(**config).double().eval()
    model.load_state_dict(torch.load(tmp_path / 'net_g.pth', weights_only=True)['params'], strict=True)
    return model


@pytest.mark.parametrize('path', ['engine', 'modules'])
@pytest.mark.parametrize('name', GOLDENS)
def test_float64_parity_with_reference(name, path, golden_dir, tmp_path):
    """Both the module forwards (training; tracing: FLOP counting, ONNX export) and, without autograd on CPU, the
    inference engine (``srconvnet.engine``)."""
    golden = torch.load(golden_dir / name, weights_only=True)
    model = golden_model(golden, tmp_path)
    captured = {}
    hook = model.blocks[0].attention.a.register_forward_hook(lambda m, i, o: captured.__setitem__('a', o.detach()))
    with torch.enable_grad():
        model(golden['input'] / 255.)  # the module forwards, the hook sees the Fourier unit's output
    hook.remove()
    with torch.set_grad_enabled(path == 'modules'):
        assert engine.accepts(model, golden['input']) == (path == 'engine')
        out = model(golden['input'] / 255.).detach() * 255.
    assert out.dtype == torch.float64
    assert (out - golden['output']).abs().max().item() < 1e-8
    # the Fourier unit is where interleaving, normalisation and layer_scale mistakes show up as errors above 1
    a_ref = golden['intermediates']['blocks.0.attention.a']
    assert (captured['a'] - a_ref).abs().max().item() < 1e-8


def test_float32_close_to_float64(golden_dir, tmp_path):
    golden = torch.load(golden_dir / GOLDENS[0], weights_only=True)
    model = golden_model(golden, tmp_path)
    with torch.no_grad():
        out32 = model.float()(golden['input'].float() / 255.) * 255.
    err = (out32.double() - golden['output']).abs().max().item()
    assert err < 5e-3, err  # float32 rounding moves the 0..255 output by about 1e-4


@pytest.mark.parametrize('scale,expected', [(2, 990_851), (3, 1_011_651), (4, 1_007_491)])
def test_parameter_count_matches_reference(scale, expected):
    model = SRConvNet(upscale=scale)
    assert count_parameters(model) == expected
    assert sum(p.numel() for p in model.parameters()) == expected  # nothing frozen or dead


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_state_dict_layout_matches_reference(scale, golden_dir):
    rows = [line.split('\t') for line in (golden_dir.parent / f'state_dict_x{scale}.tsv').read_text().splitlines()
            if line and not line.startswith('#')]
    reference = {k: tuple(int(d) for d in shape.strip('[]').split(',') if d.strip()) for k, shape in rows}
    reference = {k: v for k, v in reference.items() if not k.startswith(('sub_mean.', 'add_mean.'))}
    ours = {k: tuple(v.shape) for k, v in SRConvNet(upscale=scale).state_dict().items()}
    assert ours == reference


@pytest.mark.parametrize('size', [(1, 1), (2, 2), (1, 3), (5, 7), (17, 23)])
@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.slow
def test_any_input_size(size, scale):
    model = small(scale).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, *size))
    assert out.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert torch.isfinite(out).all()


def test_batch_independence():
    torch.manual_seed(0)
    model = small(3).double().eval()
    with torch.no_grad():
        model.blocks[0].attention.layer_scale.normal_()  # let the attention branch matter
        x = torch.rand(3, 3, 9, 11, dtype=torch.float64)
        batched = model(x)
        single = torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert (batched - single).abs().max().item() < 1e-12


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    model = small(2)
    model(torch.rand(2, 3, 8, 8)).abs().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert model.blocks[0].attention.layer_scale.grad.abs().sum() > 0


def test_autocast_bfloat16_cpu():
    torch.manual_seed(0)
    model = small(4).eval()
    x = torch.rand(1, 3, 12, 10)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    assert out.shape == ref.shape
    assert (out.float() - ref).abs().max().item() < 0.05


def test_registered_and_built_through_basicsr():
    assert ARCH_REGISTRY.get('SRConvNet') is SRConvNet
    net = build_network({'type': 'SRConvNet', 'num_feat': 16, 'num_block': 1, 'num_heads': 4, 'num_kernels': 4,
                         'upscale': 2, 'img_range': 255.})
    assert isinstance(net, SRConvNet)
    assert net(torch.rand(1, 3, 4, 4)).shape == (1, 3, 8, 8)


@pytest.mark.parametrize('bad', [1, 5, 8, '4'])
def test_unsupported_scale_is_a_value_error(bad):
    with pytest.raises(ValueError, match=r'\(2, 3, 4\)'):
        SRConvNet(upscale=bad)
