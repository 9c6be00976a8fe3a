"""Every export target against PyTorch: the file ``python -m srconvnet.export --target T`` writes, run by its own
runtime and timed beside the PyTorch path.

Usage (the table of docs/inference.md; 2 threads for every runtime)::

    PYTHONPATH=$PWD python scripts/benchmark_export.py --scale 4 --threads 2 --runs 3

SRConvNet (authors' default config unless ``--num-block``/``--num-feat`` say otherwise, random weights: speed does
not depend on them) at ``--scale`` is exported once per target into a temporary folder, at the LR size
ceil(720 / s) × ceil(1280 / s) (180×320 at ×4: a 720p output) or ``--size HxW``; the fixed-size targets
(executorch, litert, ncnn) get that size as ``--input-size``. Each file is loaded by its runtime as an app would:
ONNX Runtime's CPU provider (the settings of scripts/benchmark_onnx.py), ``executorch.runtime`` (XNNPACK's thread
pool reset to ``--threads``), ai-edge-litert's ``Interpreter(num_threads=...)`` (its XNNPACK delegate), NCNN's
``Net`` (``opt.num_threads``). Each runtime is timed alternately with the PyTorch path (``SRConvNet.forward`` under
``torch.inference_mode``, ``torch.set_num_threads(--threads)``) in this one process, after ``--warmup`` untimed
runs of each; "ratio" is the runtime's median over PyTorch's, with the range of the per-pair ratios. "max error" is
the largest absolute difference from PyTorch's output on one random image. A target that cannot be exported gets a
row saying why (a missing package: the extra that installs it).
"""
import argparse
import json
import math
import os
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch

from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.atomic_write import atomic_write
from srconvnet.export import TARGETS, ExportError, export
from srconvnet.export.common import parse_size
from srconvnet_plugin.measure.benchmark_helpers import (describe_machine, lr_size, machine_info,
                                                         ort_session as session, time_alternately)

FIXED_SIZE = ('executorch', 'litert', 'ncnn')  # targets exported at one input size
SUFFIX = {'portable': '.onnx', 'onnxruntime-cpu': '.onnx', 'executorch': '.pte', 'litert': '.tflite', 'ncnn': '.param'}


def runner(target, path, threads):
    """(runtime description, run(x: 1×3×H×W float32 array) → output array) for the file ``path`` of ``target``."""
    if target in ('portable', 'onnxruntime-cpu'):
        import onnxruntime as ort
        onnx_session = session(path, threads)
        return f'onnxruntime {ort.__version__}', lambda x: onnx_session.run(None, {'lq': x})[0]
    if target == 'executorch':
        from importlib.metadata import version

        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        from executorch.runtime import Runtime
        _unsafe_reset_threadpool(threads)
        method = Runtime.get().load_program(path).load_method('forward')
        return f'executorch {version("executorch")} (XNNPACK)', lambda x: method.execute([torch.from_numpy(x)])[0]
    if target == 'litert':
        from importlib.metadata import version

        from ai_edge_litert.interpreter import Interpreter
        signature = Interpreter(model_path=path, num_threads=threads).get_signature_runner()
        (name, ) = signature.get_input_details()
        return (f'ai-edge-litert {version("ai-edge-litert")} (XNNPACK delegate)',
                lambda x: next(iter(signature(**{name: x}).values())))
    if target == 'ncnn':
        import ncnn
        net = ncnn.Net()
        net.opt.num_threads = threads
        net.load_param(path)
        net.load_model(path[:-len('.param')] + '.bin')

        def run(x):
            _, c, h, w = x.shape
            mat = ncnn.Mat(w, h, c)  # (ncnn.Mat(array) of a 3-channel array crashes in ncnn 1.0.20261020)
            np.array(mat, copy=False)[...] = x[0]
            extractor = net.create_extractor()
            extractor.input('in0', mat)
            return np.array(extractor.extract('out0')[1])[None]

        return f'ncnn {ncnn.__version__}', run
    raise ValueError(f'no runner for target {target!r}')


def file_bytes(target, path):
    return os.path.getsize(path) + (os.path.getsize(path[:-len('.param')] + '.bin') if target == 'ncnn' else 0)


def _fmt(times):
    return f'{statistics.median(times) * 1e3:.0f} ms ({min(times) * 1e3:.0f}-{max(times) * 1e3:.0f})'


def measure(target, model, size, folder, args):
    """One table row (a dict) for ``target``; a target that cannot be exported or run gets ``error``."""
    path = os.path.join(folder, f'srconvnet_x{model.upscale}_{target}{SUFFIX[target]}')
    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            export(model, path, target, input_size=size if target in FIXED_SIZE else None)
    except ExportError as err:  # a missing package (the message names the extra), or a network it cannot export
        return {'target': target, 'error': str(err)}
    export_s = time.perf_counter() - started
    runtime, run = runner(target, path, args.threads)
    x = torch.rand(1, 3, *size)

    def run_torch():
        with torch.inference_mode():
            return model(x)

    array = x.numpy()
    error = float(np.abs(np.asarray(run(array)) - run_torch().numpy()).max())
    clock = time.thread_time if args.cpu_time else time.perf_counter
    times = time_alternately({'pytorch': run_torch, 'runtime': lambda: run(array)}, args.runs, args.warmup, clock)
    pairs = [a / b for a, b in zip(times['runtime'], times['pytorch'])]
    return {'target': target, 'runtime': runtime, 'file_bytes': file_bytes(target, path), 'export_s': export_s,
            'max_abs_difference': error, 'times_s': times, 'pair_ratios': pairs,
            'ratio': statistics.median(times['runtime']) / statistics.median(times['pytorch'])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--targets', nargs='+', default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument('--scale', type=int, default=4, choices=[2, 3, 4])
    parser.add_argument('--size', default=None, metavar='HxW',
                        help='LR input size (default: ceil(720 / s) x ceil(1280 / s), a 720p output)')
    parser.add_argument('--num-feat', type=int, default=64, help='network width (default: 64, the authors\')')
    parser.add_argument('--num-block', type=int, default=8, help='network depth (default: 8, the authors\')')
    parser.add_argument('--runs', type=int, default=3, help='timed runs of each (default: 3)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs of each first (default: 1)')
    parser.add_argument('--threads', type=int, default=2, help='threads for PyTorch and every runtime (default: 2)')
    parser.add_argument('--cpu-time', action='store_true',
                        help='time CPU time of the calling thread (needs --threads 1), not wall time')
    parser.add_argument('--json', default=None, help='write the results to this JSON file too')
    args = parser.parse_args(argv)
    if args.runs < 1 or args.threads < 1 or args.warmup < 0:
        parser.error('--runs and --threads must be positive, --warmup 0 or more')
    if args.cpu_time and args.threads != 1:
        parser.error('--cpu-time needs --threads 1 (other threads\' CPU time would not be counted)')
    try:
        size = parse_size(args.size) if args.size else lr_size(args.scale)
    except ValueError as err:
        parser.error(str(err))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = SRConvNet(num_feat=args.num_feat, num_block=args.num_block, upscale=args.scale).eval()
    machine = machine_info(torch.device('cpu'))
    print(f'{describe_machine(machine)}; SRConvNet x{args.scale} (num_feat {args.num_feat}, num_block '
          f'{args.num_block}), LR input {size[0]}×{size[1]}, {args.threads} threads for every runtime, '
          f'{"thread CPU" if args.cpu_time else "wall"} time, {args.runs} runs after {args.warmup} warm-up')
    print('| target | runtime | file | max error vs PyTorch | PyTorch median (min-max) | runtime median (min-max) '
          '| ratio runtime / PyTorch (pairs) | export |')
    print('|---|---|---|---|---|---|---|---|')
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for target in args.targets:
            row = measure(target, model, size, folder, args)
            results.append(row)
            if 'error' in row:
                print(f'| {target} | {row["error"]} | | | | | | |', flush=True)
                continue
            pairs = row['pair_ratios']
            print(f'| {target} | {row["runtime"]} | {row["file_bytes"] / 2**20:.1f} MiB | '
                  f'{row["max_abs_difference"]:.1e} | {_fmt(row["times_s"]["pytorch"])} | '
                  f'{_fmt(row["times_s"]["runtime"])} | {row["ratio"]:.2f} ({min(pairs):.2f}-{max(pairs):.2f}) | '
                  f'{math.ceil(row["export_s"])} s |', flush=True)
    if args.json:
        report = {'args': vars(args), 'machine': machine, 'lr_size': list(size), 'results': results}
        atomic_write(args.json, json.dumps(report, indent=1).encode('utf-8'))


if __name__ == '__main__':
    main()
