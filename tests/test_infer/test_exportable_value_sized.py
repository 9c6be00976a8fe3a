"""The module-forward form NCNN is converted from (``module_forward_form(model, value_sized=True)``): its Fourier
units build their DFT matrices from the input's values and its mixing layers fold the channel shuffle, and it
computes the network's module forwards (float64, sizes with odd, even, prime and unit sides)."""
import warnings

import pytest
import torch

from export_runtimes import tiny_network
from srconvnet.engine import EngineStepsAside
from srconvnet.export.exportable import ShuffleFoldedMixFFN, ValueSizedFourierUnit, module_forward_form


@pytest.mark.parametrize('size', [(1, 1), (7, 9), (18, 22), (31, 16)])
def test_value_sized_form_equals_module_forwards(size):
    model = tiny_network(4)
    model.blocks.append(tiny_network(4).blocks[0])  # two blocks
    form = module_forward_form(model, value_sized=True).double()
    assert sum(isinstance(m, ValueSizedFourierUnit) for m in form.modules()) == 2
    assert sum(isinstance(m, ShuffleFoldedMixFFN) for m in form.modules()) == 2
    x = torch.rand(1, 3, *size, dtype=torch.float64)
    with torch.enable_grad(), warnings.catch_warnings():  # module forwards, as training runs them
        warnings.simplefilter('ignore', EngineStepsAside)
        expected = model.double()(x).detach()
        out = form(x)
    assert (out - expected).abs().max().item() < 1e-10
