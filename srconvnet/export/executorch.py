"""The ``executorch`` target: a ``.pte`` program for ExecuTorch (PyTorch's runtime for Android, iOS and Linux),
lowered to its XNNPACK backend.

The program takes one float32 image ``1×3×H×W`` in [0, 1] at the fixed ``--input-size`` and returns ``1×3×sH×sW``.
The size is fixed so that everything computed from it (the DFT matrices of the Fourier units) is folded into
constants before lowering: XNNPACK then takes those matrix products as fully connected layers with static weights
(it takes no product whose both operands are computed at run time). The program records its scale and size as
constant methods ``srconvnet_scale`` and ``srconvnet_input_size`` (``[H, W]``), beside ``forward``.
"""
from srconvnet.export.common import (INPUT_SIZE_KEY, SCALE_KEY, ExportError, metadata, refuse_existing, require,
                                     write_bytes)
from srconvnet.export.exportable import export_program

TARGET = 'executorch'


def _buffers_persistent(program):
    """``program`` with its non-persistent buffers made persistent (moved from ``constants`` to the state dict):
    ExecuTorch's lowering of a conv whose weight is a non-persistent buffer fails its verifier ("Non-persistent
    buffer ... is in the state dict"). The values are the same; the .pte stores them either way."""
    from torch.export.graph_signature import InputKind

    for spec in program.graph_signature.input_specs:
        if spec.kind == InputKind.BUFFER and not spec.persistent:
            spec.persistent = True
            program.state_dict[spec.target] = program.constants.pop(spec.target)
    return program


def lower(model, input_size):
    """The ExecuTorch program (``ExecutorchProgramManager``) of ``model`` at ``input_size`` (H, W), XNNPACK-lowered."""
    exir = require('executorch.exir', 'executorch', TARGET)
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass

    program = _buffers_persistent(export_program(model, input_size=input_size, dynamic=False, batch=1))
    # the decomposed program with everything that depends on the (fixed) size alone folded into constants
    program = constant_prop_pass(program.run_decompositions({}))
    props = metadata(model, TARGET, input_size)
    constants = {SCALE_KEY: int(props[SCALE_KEY]), INPUT_SIZE_KEY: list(input_size)}
    edge = exir.to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()], constant_methods=constants)
    return edge.to_executorch()


def write_executorch(model, output_path, *, input_size=None, overwrite=False):
    """ExecuTorch .pte with the XNNPACK backend (Android, iOS, Linux), fixed --input-size"""
    refuse_existing(output_path, overwrite)
    if input_size is None:
        raise ExportError('the executorch target needs --input-size HxW (its program runs at one input size)')
    return write_bytes(output_path, lower(model, input_size).buffer, overwrite)
