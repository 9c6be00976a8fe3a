"""Export a trained SRConvNet for other runtimes: ``python -m srconvnet.export --weights W OUTPUT [--target T]``.

Usage::

    python -m srconvnet.export --weights experiments/pretrained_models/SRConvNet_x4.pth srconvnet_x4.onnx

Every target starts from one exportable form of the network (:mod:`srconvnet.export.exportable`: real arithmetic
only, captured by ``torch.export`` with dynamic batch, height and width): its ``ExportedProgram``, or the ONNX graph
made from it where a converter reads ONNX. ``TARGETS`` maps each ``--target`` name to its writer,
``write(model, output_path, *, input_size=None, overwrite=False, **options)``; each file records the scale (and,
where the size is fixed, ``--input-size``). A target whose runtime or converter is not installed says in one line
which extra to install. See docs/inference.md, "Export".
"""
import argparse
import os

from srconvnet.checkpoints import CheckpointError
from srconvnet.export.common import ExportError, MissingPackage, parse_size
from srconvnet.export.exportable import export_program, exportable_form
from srconvnet.export.executorch import write_executorch
from srconvnet.export.litert import write_litert
from srconvnet.export.ncnn import write_ncnn
from srconvnet.export.onnx_graph import write_onnxruntime_cpu, write_portable

#: --target name → writer(model, output_path, *, input_size=None, overwrite=False, **options) → path written
TARGETS = {
    'portable': write_portable,
    'onnxruntime-cpu': write_onnxruntime_cpu,
    'executorch': write_executorch,
    'litert': write_litert,
    'ncnn': write_ncnn,
}


def export(model, output_path, target='portable', *, input_size=None, overwrite=False, **options):
    """Write ``model`` (an ``SRConvNet``) for ``target`` to ``output_path``; returns the path written.

    ``input_size`` ((H, W) or ``'HxW'``) fixes the input size for targets that need one. An existing file is
    replaced only with ``overwrite=True`` and is refused before the (slow) export starts.
    """
    writer = TARGETS.get(target)
    if writer is None:
        raise ExportError(f'unknown export target {target!r}; choose one of {", ".join(TARGETS)}')
    return writer(model, os.fspath(output_path), input_size=parse_size(input_size), overwrite=overwrite, **options)


def _summary(writer):
    return ' '.join((writer.__doc__ or '').split('\n\n')[0].split()).rstrip('.')


def main(argv=None):
    """Console entry point: ``python -m srconvnet.export --weights W OUTPUT [--target T]``."""
    from srconvnet.loading import InferenceError, load_model

    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('output', help='file to write')
    parser.add_argument('--weights', required=True, help="BasicSR checkpoint, .safetensors or the authors' checkpoint")
    parser.add_argument('--scale', default='auto', help='expected scale; "auto" reads it from the checkpoint')
    parser.add_argument('--target', choices=list(TARGETS), default='portable',
                        help='; '.join(f'"{name}": {_summary(writer)}' for name, writer in TARGETS.items()))
    parser.add_argument('--input-size', default=None, metavar='HxW',
                        help='input size, for targets whose runtime needs a fixed one')
    parser.add_argument('--opset', type=int, default=None,
                        help='ONNX opset of the ONNX targets (default: srconvnet.export.onnx_graph.DEFAULT_OPSET)')
    parser.add_argument('--overwrite', action='store_true', help='replace OUTPUT if it exists')
    args = parser.parse_args(argv)
    options = {} if args.opset is None else {'opset': args.opset}
    try:
        model, config = load_model(args.weights, scale=args.scale, device='cpu')
        path = export(model, args.output, args.target, input_size=args.input_size, overwrite=args.overwrite,
                      **options)
    except (CheckpointError, InferenceError, ExportError, FileExistsError) as err:
        parser.exit(2, f'error: {err}\n')
    print(f'wrote {path}: SRConvNet x{config["upscale"]}, input Nx3xHxW in [0,1] ({args.target}: '
          f'{_summary(TARGETS[args.target])})')


__all__ = ['TARGETS', 'ExportError', 'MissingPackage', 'export', 'export_program', 'exportable_form', 'main']
