"""The ``ncnn`` target: NCNN's ``.param``/``.bin`` pair (Tencent's runtime for phones and chaiNNer's NCNN backend),
converted from the exportable form by pnnx, the converter NCNN ships.

``OUTPUT`` names the ``.param`` file (``.param`` is added if missing); the weights go beside it with ``.bin``. The
net has input blob ``in0`` (one image ``3×H×W``, float32 in [0, 1], NCNN's channel-major ``Mat``) and output blob
``out0`` (``3×sH×sW``); weights are stored in float32. The network runs at the fixed ``--input-size``: pnnx folds
the DFT matrices of the Fourier units, which are built from the input size, into constants of the traced size (see
docs/inference.md). The name of the input *layer* records the scale and that size, ``srconvnet_x4_180x320``
(:func:`read_metadata`); the blob names are pnnx's.
"""
import os
import re
import tempfile

import torch

from srconvnet.export.common import ExportError, refuse_existing, require, write_bytes
from srconvnet.export.exportable import export_program

TARGET = 'ncnn'
INPUT_BLOB, OUTPUT_BLOB = 'in0', 'out0'


def paths(output_path):
    """(.param path, .bin path) of ``output_path``."""
    output_path = os.fspath(output_path)
    stem = output_path[:-len('.param')] if output_path.endswith('.param') else output_path
    return stem + '.param', stem + '.bin'


def layer_name(scale, input_size):
    return f'srconvnet_x{scale}_{input_size[0]}x{input_size[1]}'


def read_metadata(param_text):
    """{'scale': int, 'input_size': (H, W)} from the input layer's name in a .param file written here, else {}."""
    match = re.search(r'^Input\s+srconvnet_x(\d)_(\d+)x(\d+)\s', param_text, flags=re.M)
    if match is None:
        return {}
    return {'scale': int(match.group(1)), 'input_size': (int(match.group(2)), int(match.group(3)))}


class _Traceable(torch.nn.Module):
    """The module of an ``ExportedProgram``, held out of sight of ``eval()`` (pnnx calls it; that module refuses)."""

    def __init__(self, program_module):
        super().__init__()
        object.__setattr__(self, 'program_module', program_module)

    def forward(self, x):
        return self.program_module(x)


def convert(model, input_size):
    """(param text, bin bytes) of ``model`` traced by pnnx at ``input_size`` (H, W)."""
    pnnx = require('pnnx', 'ncnn', TARGET)

    # pnnx traces with torch.jit.trace, under which the form's sizes are tensors; the module of the fixed-size
    # program has them as constants
    form = _Traceable(export_program(model, input_size=input_size, dynamic=False, batch=1).module())
    sample = torch.rand(1, model.to_feat.in_channels, *input_size)
    with tempfile.TemporaryDirectory() as work:  # pnnx writes a dozen side files next to its TorchScript file
        base = os.path.join(work, 'srconvnet')
        try:
            with torch.no_grad():
                pnnx.export(form, base + '.pt', inputs=(sample, ), fp16=False)
            with open(base + '.ncnn.param', encoding='utf-8') as f:
                param = f.read()
            with open(base + '.ncnn.bin', 'rb') as f:
                weights = f.read()
        except (RuntimeError, OSError) as err:  # a failed trace, or pnnx wrote no NCNN pair
            message = (str(err).strip().splitlines() or [''])[0]
            raise ExportError(f'pnnx cannot convert this network to NCNN ({type(err).__name__}: {message})') from None
    return param, weights


def write_ncnn(model, output_path, *, input_size=None, overwrite=False):
    """NCNN .param/.bin pair via pnnx (phones, chaiNNer's NCNN backend), fixed --input-size"""
    param_path, bin_path = paths(output_path)
    refuse_existing(param_path, overwrite)
    refuse_existing(bin_path, overwrite)
    if input_size is None:
        raise ExportError('the ncnn target needs --input-size HxW (its net runs at one input size)')
    param, weights = convert(model, input_size)
    input_line = re.compile(rf'^(Input\s+)\S+(\s+0 1 {INPUT_BLOB}\b)', flags=re.M)
    param, found = input_line.subn(rf'\g<1>{layer_name(model.upscale, input_size)}\g<2>', param, count=1)
    if not found or f' {OUTPUT_BLOB}' not in param:
        raise ExportError(f'pnnx wrote an NCNN net without the {INPUT_BLOB}/{OUTPUT_BLOB} blobs expected')
    write_bytes(bin_path, weights, overwrite)
    return write_bytes(param_path, param.encode('utf-8'), overwrite)
