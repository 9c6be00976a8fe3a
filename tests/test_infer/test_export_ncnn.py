"""``--target ncnn``: a .param/.bin pair that the ``ncnn`` Python binding runs within 1/255 of PyTorch at sizes other
than the ones it was traced at, fed as an app feeds it (8-bit RGB pixels through ``Mat.from_pixels``, normalised by
1/255); the scale in the input layer's name; the command line; refusals before any export."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from export_runtimes import INPUT_SIZE, case_params, export_quietly, network, photo, pytorch_output
from srconvnet.export import export

ncnn = pytest.importorskip('ncnn', reason="the ncnn extra is not installed (pip install 'srconvnet-plugin[ncnn]')")
pytest.importorskip('pnnx', reason="the ncnn extra is not installed (pip install 'srconvnet-plugin[ncnn]')")


def run_ncnn(param_path, x):
    """The net's output for the 1×3×H×W image ``x`` (8-bit values / 255), as a 1×3×sH×sW array."""
    net = ncnn.Net()
    assert net.load_param(str(param_path)) == 0
    assert net.load_model(str(param_path)[:-len('.param')] + '.bin') == 0
    pixels = np.ascontiguousarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    h, w = pixels.shape[:2]
    mat = ncnn.Mat.from_pixels(pixels, ncnn.Mat.PixelType.PIXEL_RGB, w, h)
    mat.substract_mean_normalize([], [1 / 255] * 3)
    extractor = net.create_extractor()
    assert extractor.input('in0', mat) == 0
    status, out = extractor.extract('out0')
    assert status == 0
    return np.array(out)[None]


@pytest.fixture(scope='module', params=case_params())
def exported(request, tmp_path_factory):
    model = network(request.param)
    work = tmp_path_factory.mktemp('ncnn')
    if request.param != 'x3':
        return model, Path(export_quietly(model, work / f'{request.param}.param', 'ncnn'))
    # the quick case goes through the command line, from a checkpoint
    weights = work / 'net_g_x3.pth'
    torch.save({'params_ema': model.state_dict()}, weights)
    cmd = [sys.executable, '-m', 'srconvnet.export', '--weights', str(weights), str(work / 'x3'), '--target', 'ncnn']
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=work,
                            env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert result.returncode == 0, result.stderr
    assert 'wrote' in result.stdout and sorted(os.listdir(work)) == ['net_g_x3.pth', 'x3.bin', 'x3.param']
    return model, work / 'x3.param'


@pytest.mark.parametrize('size', [(27, 50), (13, 9)])
def test_ncnn_binding_matches_pytorch_at_any_size(exported, size):
    """Neither size is one the net was traced at (``INPUT_SIZE`` and 7×5 more in the quick case, 32×40 and 39×45
    from the command line)."""
    from srconvnet.export.ncnn import read_metadata

    model, path = exported
    x = photo(*size)
    out = run_ncnn(path, x)
    expected = pytorch_output(model, x)
    assert out.shape == expected.shape == (1, 3, model.upscale * size[0], model.upscale * size[1])
    assert np.abs(out - expected).max() < 1 / 255
    assert read_metadata(path.read_text()) == {'scale': model.upscale}


def test_ncnn_refuses_to_overwrite_before_the_export(tmp_path):
    model = network('x3')
    (tmp_path / 'b.bin').write_bytes(b'kept')  # either file of the pair is kept
    with pytest.raises(FileExistsError, match='b.bin exists; pass --overwrite'):
        export(model, tmp_path / 'b', 'ncnn', input_size=INPUT_SIZE)
    assert sorted(os.listdir(tmp_path)) == ['b.bin']
