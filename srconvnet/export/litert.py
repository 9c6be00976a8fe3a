"""The ``litert`` target: a ``.tflite`` model for LiteRT (formerly TensorFlow Lite: Android, embedded Linux),
converted from the exportable form's program by litert-torch.

The model takes one float32 image ``1×3×H×W`` in [0, 1] at the fixed ``--input-size`` and returns ``1×3×sH×sW``
(the layout of the PyTorch network; LiteRT's converter keeps it). Its flatbuffer metadata records the scale, the
target and the input size (``srconvnet.export.common`` keys, UTF-8 values): :func:`read_metadata` reads them.
"""
from srconvnet.export.common import ExportError, metadata, refuse_existing, require, write_bytes
from srconvnet.export.exportable import exportable_form

TARGET = 'litert'


def _schema():
    return require('ai_edge_litert.schema_py_generated', 'litert', TARGET)


def with_metadata(content, props):
    """The .tflite flatbuffer ``content`` with the {name: str} ``props`` added to its metadata (one buffer each)."""
    import flatbuffers
    import numpy as np

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    model.metadata = list(model.metadata or [])
    for name, value in props.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(value.encode(), dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name, len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(content) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b'TFL3')
    return bytes(builder.Output())


def read_metadata(content):
    """{name: str} of the metadata entries of a .tflite flatbuffer whose values are UTF-8 text."""
    schema = _schema()
    model = schema.Model.GetRootAs(content, 0)
    props = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        data = model.Buffers(entry.Buffer()).DataAsNumpy()
        try:
            props[entry.Name().decode()] = bytes(data).decode()
        except (TypeError, UnicodeDecodeError):  # a binary entry (the converter's own): not ours
            continue
    return props


def convert(model, input_size):
    """The .tflite bytes of ``model`` at ``input_size`` (H, W), without our metadata."""
    litert_torch = require('litert_torch', 'litert', TARGET)
    import torch

    sample = torch.rand(1, model.to_feat.in_channels, *input_size)
    try:
        return litert_torch.convert(exportable_form(model), (sample, )).model_content()
    except Exception as err:  # the converter's errors have no common base; say it in one line
        message = (str(err).strip().splitlines() or [''])[0]
        raise ExportError(f'litert-torch cannot convert this network ({type(err).__name__}: {message})') from None


def write_litert(model, output_path, *, input_size=None, overwrite=False):
    """LiteRT .tflite (Android, embedded Linux) converted with litert-torch, fixed --input-size"""
    refuse_existing(output_path, overwrite)
    if input_size is None:
        raise ExportError('the litert target needs --input-size HxW (its model runs at one input size)')
    content = with_metadata(convert(model, input_size), metadata(model, TARGET, input_size))
    return write_bytes(output_path, content, overwrite)
