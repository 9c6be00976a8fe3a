"""The ``ncnn`` target: NCNN's ``.param``/``.bin`` pair (Tencent's runtime for phones and chaiNNer's NCNN backend),
converted by pnnx, the converter NCNN ships.

``OUTPUT`` names the ``.param`` file (``.param`` is added if missing); the weights go beside it with ``.bin``. The
net has input blob ``in0`` (one image ``3×H×W``, float32 in [0, 1], NCNN's channel-major ``Mat``) and output blob
``out0`` (``3×sH×sW``), weights in float32, and runs at any input size: pnnx traces the network's module forwards
at two sizes (``--input-size``, default 32×40, and one 7 rows and 5 columns larger), with each Fourier unit as
``srconvnet.export.exportable.ValueSizedFourierUnit``, whose DFT matrices are built from the input's values, not
its shape (NCNN has no layer for the shape arithmetic and no tensor above 4-D, which the exportable form's factored
DFTs use). The name of the input *layer* records the scale, ``srconvnet_x4`` (:func:`read_metadata`); the blob
names are pnnx's.
"""
import os
import re
import tempfile
import warnings

import torch

from srconvnet.engine.guard import EngineStepsAside
from srconvnet.export.common import ExportError, refuse_existing, require, write_bytes
from srconvnet.export.exportable import DEFAULT_SAMPLE_SIZE, module_forward_form

TARGET = 'ncnn'
INPUT_BLOB, OUTPUT_BLOB = 'in0', 'out0'


def paths(output_path):
    """(.param path, .bin path) of ``output_path``."""
    output_path = os.fspath(output_path)
    stem = output_path[:-len('.param')] if output_path.endswith('.param') else output_path
    return stem + '.param', stem + '.bin'


def read_metadata(param_text):
    """{'scale': int} from the input layer's name in a .param file written here, else {}."""
    match = re.search(r'^Input\s+srconvnet_x(\d)\s', param_text, flags=re.M)
    return {} if match is None else {'scale': int(match.group(1))}


def convert(model, input_size=None):
    """(param text, bin bytes) of ``model`` traced by pnnx at ``input_size`` (H, W) and a larger size."""
    pnnx = require('pnnx', 'ncnn', TARGET)

    h, w = input_size or DEFAULT_SAMPLE_SIZE
    samples = [torch.rand(1, model.to_feat.in_channels, h, w), torch.rand(1, model.to_feat.in_channels, h + 7, w + 5)]
    with tempfile.TemporaryDirectory() as work:  # pnnx writes a dozen side files next to its TorchScript file
        base = os.path.join(work, 'srconvnet')
        try:
            with warnings.catch_warnings():  # the form's swapped modules make the engine step aside: expected
                warnings.simplefilter('ignore', EngineStepsAside)
                pnnx.export(module_forward_form(model, value_sized=True), base + '.pt', inputs=samples[:1],
                            inputs2=samples[1:], fp16=False)
            with open(base + '.ncnn.param', encoding='utf-8') as f:
                param = f.read()
            with open(base + '.ncnn.bin', 'rb') as f:
                weights = f.read()
        except (RuntimeError, OSError) as err:  # a failed trace, or pnnx wrote no NCNN pair
            message = (str(err).strip().splitlines() or [''])[0]
            raise ExportError(f'pnnx cannot convert this network to NCNN ({type(err).__name__}: {message})') from None
    return param, weights


def write_ncnn(model, output_path, *, input_size=None, overwrite=False):
    """NCNN .param/.bin pair via pnnx (phones, chaiNNer's NCNN backend), any input size"""
    param_path, bin_path = paths(output_path)
    refuse_existing(param_path, overwrite)
    refuse_existing(bin_path, overwrite)
    param, weights = convert(model, input_size)
    input_line = re.compile(rf'^(Input\s+)\S+(\s+0 1 {INPUT_BLOB}\b)', flags=re.M)
    param, found = input_line.subn(rf'\g<1>srconvnet_x{model.upscale}\g<2>', param, count=1)
    if not found or f' {OUTPUT_BLOB}' not in param:
        raise ExportError(f'pnnx wrote an NCNN net without the {INPUT_BLOB}/{OUTPUT_BLOB} blobs expected')
    unknown = sorted({line.split()[0] for line in param.splitlines()[2:] if '.' in line.split()[0]})
    if unknown:  # pnnx writes operators NCNN has no layer for under their torch names (torch.arange, Tensor.to)
        raise ExportError(f'pnnx left operators NCNN cannot run in this network: {", ".join(unknown)}')
    write_bytes(bin_path, weights, overwrite)
    return write_bytes(param_path, param.encode('utf-8'), overwrite)
