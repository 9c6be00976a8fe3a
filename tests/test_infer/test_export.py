"""ONNX export: the factored DFTs and the ONNX form of the network equal the module forwards (float64), and ONNX
Runtime reproduces PyTorch with dynamic batch, height and width; other networks export through their module
forwards (dense matrix DFT) or are refused in one line."""
import os
import subprocess
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from skimage import data

from conftest import REPO_ROOT
from srconvnet.archs.srconvnet_arch import FourierUnit, SRConvNet
from srconvnet.engine import EngineStepsAside
from srconvnet.engine.onnx_net import OnnxSRConvNet
from srconvnet.engine.real_dft import factored_complex_dft, factored_real_dft
from srconvnet.export import MatrixDFTFourierUnit, export_onnx, main, to_exportable


def tiny_model(upscale=3):
    torch.manual_seed(0)
    model = SRConvNet(num_feat=16, num_block=2, num_heads=4, num_kernels=4, upscale=upscale)
    with torch.no_grad():
        for block in model.blocks:  # make the attention branch (and so the Fourier unit) matter
            block.attention.layer_scale.normal_()
    return model.eval()


def photo(h, w, y=60, x=150, n=1):
    """Crops of the chelsea photograph as an n×3×h×w float tensor in [0, 1] (image i shifted by 7·i pixels)."""
    crops = [data.chelsea()[y + 7 * i:y + 7 * i + h, x:x + w].transpose(2, 0, 1) for i in range(n)]
    return torch.from_numpy(np.stack(crops).astype(np.float32) / 255)


@pytest.mark.parametrize('n', [1, 2, 3, 7, 12, 16, 17, 20, 30, 64, 97, 427])
def test_factored_dfts_are_the_orthonormal_ffts(n):
    """Float64, lengths with even and odd factors, primes (one dense stage) and 1: the real transform holds in slot
    (g, m) the frequency min(g + Q·m, n − g − Q·m) ≤ n/2 (some twice) and inverts like irfft (imaginary parts of 0 and
    n/2 ignored); the complex one gives every frequency once."""
    x = torch.randn(n, 5, dtype=torch.float64)
    p, q, groups, s1, s2, i2, i1 = factored_real_dft(n, torch.float64)
    spec = torch.matmul(s2, (s1 @ x.view(q, -1)).view(groups, 2 * p, 5)).view(groups, 2, p, 5)
    k = torch.arange(groups)[:, None] + q * torch.arange(p)[None, :]
    r = torch.minimum(k, n - k)
    expected = torch.fft.rfft(x, dim=0, norm='ortho')[r]  # groups × p × 5
    assert torch.allclose(spec[:, 0], expected.real, atol=1e-12)
    assert torch.allclose(spec[:, 1], expected.imag, atol=1e-12)
    # any spectrum held in the slots (a frequency held twice, the same value twice) inverts as irfft does
    z = torch.complex(torch.randn(n // 2 + 1, 5, dtype=torch.float64), torch.randn(n // 2 + 1, 5, dtype=torch.float64))
    held = torch.stack((z[r].real, z[r].imag), 1)
    back = i1 @ torch.matmul(i2, held.reshape(groups, 2 * p, 5)).view(2 * groups, -1)
    assert torch.allclose(back.view(n, 5), torch.fft.irfft(z, n=n, dim=0, norm='ortho'), atol=1e-12)

    c = torch.randn(2, n, 5, dtype=torch.float64)
    p, q, f1, f2, b2, b1 = factored_complex_dft(n, torch.float64)
    spec = torch.matmul(f2, (f1 @ c.view(2 * q, -1)).view(q, 2 * p, 5)).view(q, 2, p, 5)
    freq = (torch.arange(q)[:, None] + q * torch.arange(p)[None, :]).flatten()
    expected = torch.fft.fft(torch.complex(c[0], c[1]), dim=0, norm='ortho')[freq].view(q, p, 5)
    assert torch.allclose(spec[:, 0], expected.real, atol=1e-12)
    assert torch.allclose(spec[:, 1], expected.imag, atol=1e-12)
    back = b1 @ torch.matmul(b2, spec.reshape(q, 2 * p, 5)).view(2 * q, -1)
    assert torch.allclose(back.view(2, n, 5), c, atol=1e-12)


@pytest.mark.parametrize('upscale', [2, 3, 4])
def test_onnx_form_of_the_network_matches_module_forwards(upscale):
    """Float64 ``OnnxSRConvNet`` against the module forwards (autograd on: not the engine), odd and 1-pixel sides."""
    model = tiny_model(upscale).double()
    model.requires_grad_(False)
    onnx_form = OnnxSRConvNet(model)
    for h, w in [(7, 9), (1, 1), (12, 5), (2, 30)]:
        x = torch.rand(1, 3, h, w, dtype=torch.float64)
        with torch.enable_grad():
            expected = model(x)
        got = onnx_form(x)
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() < 1e-12, (h, w)


@pytest.mark.parametrize('size', [(9, 13), (8, 10), (16, 7), (1, 2)])
def test_matrix_dft_unit_matches_fft_unit(size):
    """Float64: odd and even H and W, where irfft2's handling of the 0 and W/2 columns differs."""
    unit = tiny_model().blocks[0].attention.a.double()
    x = torch.randn(2, 16, *size, dtype=torch.float64)
    with torch.no_grad():
        expected = unit(x)
        got = MatrixDFTFourierUnit(unit)(x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < 1e-12


def test_exportable_model_matches_original():
    model = tiny_model()
    exportable = to_exportable(model)
    assert sum(isinstance(m, MatrixDFTFourierUnit) for m in exportable.modules()) == 2
    assert exportable.state_dict().keys() == model.state_dict().keys()
    x = photo(15, 22).double()
    with torch.no_grad():
        assert (exportable.double()(x) - model.double()(x)).abs().max().item() < 1e-10


def check_onnx_runtime(path, model, sizes, batches=(1, 2)):
    """ONNX Runtime's outputs for photo crops of every size and batch within 1e-4 of ``model``'s (the engine)."""
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    s = model.upscale
    for n in batches:
        for h, w in sizes:
            lq = photo(h, w, n=n)
            with torch.no_grad():
                expected = model(lq).numpy()
            (got, ) = session.run(None, {'lq': lq.numpy()})
            assert got.shape == (n, 3, s * h, s * w)
            assert np.abs(got - expected).max() < 1e-4, (n, h, w)


@pytest.mark.slow
def test_onnx_dynamic_batch_height_width(tmp_path, capsys):
    model = tiny_model()
    weights = tmp_path / 'net_g_x3.pth'
    torch.save({'params_ema': model.state_dict()}, weights)
    onnx_path = tmp_path / 'srconvnet_x3.onnx'
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, '-m', 'srconvnet.export', '--weights', str(weights), str(onnx_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'x3' in result.stdout and 'Nx3xHxW' in result.stdout
    graph = onnx.load(str(onnx_path)).graph
    assert [n.op_type for n in graph.node] == ['Scan']  # one image at a time, any batch
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ['batch', 'channels', 'height',
                                                                                'width']
    # none is the export's sample size (32×40); odd sides, primes, a single pixel
    check_onnx_runtime(onnx_path, model, [(20, 24), (7, 9), (33, 17), (1, 1)])

    # the export refuses to replace an existing file unless told to (the CLI's main, in this process)
    before = onnx_path.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(['--weights', str(weights), str(onnx_path)])
    assert exit_info.value.code == 2
    assert str(onnx_path) in capsys.readouterr().err
    assert onnx_path.read_bytes() == before
    with pytest.raises(FileExistsError, match='srconvnet_x3.onnx'):
        export_onnx(model, onnx_path)


@pytest.mark.parametrize('upscale', [2, 4])
@pytest.mark.slow
def test_onnx_other_scales(tmp_path, upscale):
    model = tiny_model(upscale)
    export_onnx(model, tmp_path / 'net.onnx')
    check_onnx_runtime(tmp_path / 'net.onnx', model, [(11, 6), (1, 3)])


def test_other_networks_export_through_their_module_forwards(tmp_path):
    """An ablation (no DML in block 0) is not the stock network: its module forwards are traced, after a warning,
    and ONNX Runtime matches them with any batch; a Fourier unit that is not the stock class cannot be traced (its
    forward uses torch.fft) and the export says so in one line."""
    model = tiny_model()
    model.blocks[0].ffn = torch.nn.Identity()
    with pytest.warns(EngineStepsAside, match='blocks.0.ffn is Identity, not MixFFN; the ONNX graph is traced'):
        export_onnx(model, tmp_path / 'ablation.onnx')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', EngineStepsAside)  # the engine steps aside for the ablation too
        check_onnx_runtime(tmp_path / 'ablation.onnx', model, [(9, 11), (1, 1)])

    class EditedFourierUnit(FourierUnit):
        pass

    model.blocks[1].attention.a.__class__ = EditedFourierUnit
    with pytest.warns(EngineStepsAside), pytest.raises(ValueError, match="cannot be exported to ONNX .*fft_rfft2"):
        export_onnx(model, tmp_path / 'edited.onnx')
    assert not (tmp_path / 'edited.onnx').exists()
