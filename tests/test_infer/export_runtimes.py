"""What the ExecuTorch, LiteRT and NCNN export tests share: tiny networks (stock and edited), photographs, PyTorch's
output, and the cases each test file exports once per module."""
import warnings

import numpy as np
import pytest
import torch
from skimage import data
from torch import nn

from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.engine import EngineStepsAside

INPUT_SIZE = (18, 22)  # small, H ≠ W, neither a power of two

#: case → (scale, edited); the first is the quick one, the others are marked slow
CASES = {'x3': (3, False), 'x2': (2, False), 'x4': (4, False), 'x3-edited': (3, True)}


def case_params():
    """``CASES`` as fixture params: the first runs always, the others only without ``-m 'not slow'``."""
    names = list(CASES)
    return [names[0]] + [pytest.param(name, marks=pytest.mark.slow) for name in names[1:]]


def tiny_network(scale, edited=False):
    """A 1-block, 16-channel SRConvNet whose attention branch matters (layer_scale ~ N(0, 1)); ``edited``: its DML
    replaced by an identity (an ablation: the engine steps aside, the export traces the module forwards)."""
    torch.manual_seed(scale)
    model = SRConvNet(num_feat=16, num_block=1, num_heads=4, num_kernels=4, upscale=scale)
    with torch.no_grad():
        for block in model.blocks:
            block.attention.layer_scale.normal_()
    if edited:
        model.blocks[0].ffn = nn.Identity()
    return model.eval()


def network(case):
    scale, edited = CASES[case]
    return tiny_network(scale, edited)


def photo(h, w, y=60, x=150):
    """A crop of the chelsea photograph as a 1×3×h×w float32 tensor in [0, 1]."""
    crop = data.chelsea()[y:y + h, x:x + w].transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(crop[None]).astype(np.float32) / 255)


def pytorch_output(model, x):
    """``model(x)`` as an inference app runs it (the engine for the stock network), float32 numpy."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', EngineStepsAside)
        return model(x).numpy()


def export_quietly(model, path, target, input_size=INPUT_SIZE):
    """``srconvnet.export.export`` with the converters' and the engine's warnings silenced."""
    from srconvnet.export import export
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return export(model, path, target, input_size=input_size)


def exported_fixture(target, suffix):
    """A module-scoped fixture over ``case_params()``: (network, path of its file for ``target``), exported once."""

    @pytest.fixture(scope='module', params=case_params())
    def exported(request, tmp_path_factory):
        model = network(request.param)
        return model, export_quietly(model, tmp_path_factory.mktemp(target) / f'{request.param}{suffix}', target)

    return exported


def check_fixed_size_refusals(tmp_path, target, suffix):
    """A target that needs ``--input-size`` refuses without it, and refuses to replace an existing file without
    ``overwrite``, both before any export (the existing file is kept as it was)."""
    from srconvnet.export import ExportError, export
    model = network('x3')
    with pytest.raises(ExportError, match='needs --input-size HxW'):
        export(model, tmp_path / f'a{suffix}', target)
    (tmp_path / f'b{suffix}').write_bytes(b'kept')
    with pytest.raises(FileExistsError, match='--overwrite'):
        export(model, tmp_path / f'b{suffix}', target, input_size=INPUT_SIZE)
    assert (tmp_path / f'b{suffix}').read_bytes() == b'kept'
