"""ONNX export: the matrix-DFT Fourier unit equals the FFT one, and onnxruntime reproduces PyTorch at two sizes."""
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from skimage import data

from conftest import REPO_ROOT
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.export import MatrixDFTFourierUnit, export_onnx, main, to_exportable


def tiny_model(upscale=3):
    torch.manual_seed(0)
    model = SRConvNet(num_feat=16, num_block=2, num_heads=4, num_kernels=4, upscale=upscale)
    with torch.no_grad():
        for block in model.blocks:  # make the attention branch (and so the Fourier unit) matter
            block.attention.layer_scale.normal_()
    return model.eval()


def photo(h, w, y=60, x=150):
    """A crop of the chelsea photograph as a 1×3×h×w float tensor in [0, 1]."""
    return torch.from_numpy(data.chelsea()[y:y + h, x:x + w].transpose(2, 0, 1).astype(np.float32) / 255)[None]


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


def test_onnx_dynamic_height_width(tmp_path, capsys):
    model = tiny_model()
    weights = tmp_path / 'net_g_x3.pth'
    torch.save({'params_ema': model.state_dict()}, weights)
    onnx_path = tmp_path / 'srconvnet_x3.onnx'
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, '-m', 'srconvnet.export', '--weights', str(weights), str(onnx_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'x3' in result.stdout

    session = ort.InferenceSession(str(onnx_path), providers=['CPUExecutionProvider'])
    for h, w in [(20, 24), (17, 31)]:  # neither is the export's sample size (32×40); one has odd sides
        lq = photo(h, w)
        with torch.no_grad():
            expected = model(lq).numpy()
        (got, ) = session.run(None, {'lq': lq.numpy()})
        assert got.shape == (1, 3, 3 * h, 3 * w)
        assert np.abs(got - expected).max() < 1e-4

    # the export refuses to replace an existing file unless told to (the CLI's main, in this process)
    before = onnx_path.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(['--weights', str(weights), str(onnx_path)])
    assert exit_info.value.code == 2
    assert str(onnx_path) in capsys.readouterr().err
    assert onnx_path.read_bytes() == before
    with pytest.raises(FileExistsError, match='srconvnet_x3.onnx'):
        export_onnx(model, onnx_path)
