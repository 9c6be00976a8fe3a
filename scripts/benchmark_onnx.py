"""ONNX Runtime against PyTorch: the graph ``python -m srconvnet.export`` writes, timed beside the PyTorch path.

Usage (the numbers of docs/speed.md; 2 threads for both)::

    PYTHONPATH=$PWD python scripts/benchmark_onnx.py --threads 2 --runs 5
    PYTHONPATH=$PWD python scripts/benchmark_onnx.py --threads 2 --scales 3 --ops 15   # where ORT's time goes

For each scale the LR input is ceil(720 / s) × ceil(1280 / s) (180×320 at ×4), so the output is 720p. SRConvNet
(authors' default config, random weights: speed does not depend on them) is exported to ONNX (a temporary file)
and run by ONNX Runtime's CPU provider (``intra_op_num_threads`` = ``--threads``, one inter-op thread, graph
optimisation level ORT_ENABLE_ALL, thread spinning off so that its idle threads do not take the cores from
PyTorch's turn), alternately with the PyTorch path (``SRConvNet.forward`` under ``torch.inference_mode``: the engine,
``torch.set_num_threads(--threads)``), after ``--warmup`` untimed runs of each. The table gives the median (min-max)
of each and "ratio", ONNX Runtime's median over PyTorch's, with the range of the per-pair ratios (run i of each,
timed back to back: on a shared machine whose speed drifts, that range shows how far one comparison can move), and
the largest difference between the two outputs. With 2 threads on a loaded machine, PyTorch's OpenMP threads wait
for each other at every parallel region and its times blow up far more than ONNX Runtime's: there, compare
``--threads 1 --cpu-time`` (CPU time of the calling thread, which both then run on).

``--ops N`` adds ONNX Runtime's N most expensive node kinds at each scale (its own profiler,
``SessionOptions.enable_profiling``: operator and input shapes, nodes summed, from one profiled run).

``--target onnxruntime-cpu`` times the graph ``python -m srconvnet.export --target onnxruntime-cpu`` writes (the
dynamic depthwise convs as ONNX Runtime's NCHWc operators: ``srconvnet.export.onnxruntime_cpu``) instead of the portable
one.
"""
import argparse
import collections
import json
import os
import statistics
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch

from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.atomic_write import atomic_write
from srconvnet.export import export
from srconvnet_plugin.measure.benchmark_helpers import (OUT_SIZE, describe_machine, lr_size, machine_info,
                                                         ort_session as session, print_operator_table,
                                                         time_alternately)


def ort_breakdown(path, threads, feed, top, folder):
    """ONNX Runtime's ``top`` most expensive (operator, input shapes) groups in one profiled run after a warm-up:
    rows with ``op``, ``input_shapes``, ``nodes`` (how many nodes of the graph), ``ms`` and ``share`` of the run."""
    profiled = session(path, threads, profile_prefix=os.path.join(folder, 'ort_profile'))
    profiled.run(None, feed)
    profiled.run(None, feed)
    with open(profiled.end_profiling()) as f:
        events = json.load(f)
    runs = [e for e in events if e.get('cat') == 'Session' and e.get('name') == 'model_run']
    last = runs[-1]
    groups, nodes = collections.Counter(), collections.Counter()
    for e in events:
        if (e.get('cat') == 'Node' and e['name'].endswith('_kernel_time') and e['args'].get('op_name') != 'Scan'
                and last['ts'] <= e['ts'] <= last['ts'] + last['dur']):  # the nodes inside the batch's Scan
            shapes = [list(d.values())[0] for d in e['args'].get('input_type_shape', [])]
            key = (e['args'].get('op_name', '?'), str(shapes))
            groups[key] += e['dur']
            nodes[key] += 1
    total = last['dur'] or 1
    return [{'op': op, 'input_shapes': shapes, 'nodes': nodes[(op, shapes)], 'ms': us / 1e3, 'share': us / total}
            for (op, shapes), us in groups.most_common(top)]


def _fmt(times):
    return f'{statistics.median(times) * 1e3:.0f} ms ({min(times) * 1e3:.0f}-{max(times) * 1e3:.0f})'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], choices=[2, 3, 4])
    parser.add_argument('--runs', type=int, default=5, help='timed runs of each (default: 5)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs of each first (default: 1)')
    parser.add_argument('--threads', type=int, default=2, help='threads for both (default: 2)')
    parser.add_argument('--out-size', type=int, nargs=2, default=OUT_SIZE, metavar=('H', 'W'),
                        help='output size; the LR input is ceil(H / s) × ceil(W / s) (default: 720 1280)')
    parser.add_argument('--cpu-time', action='store_true',
                        help='time CPU time of the calling thread, not wall time (needs --threads 1, where both run '
                        'on it): on a loaded machine, waiting for a core then counts for neither')
    parser.add_argument('--spinning', action='store_true',
                        help="let ONNX Runtime's idle threads spin (its default; unfair when alternating)")
    parser.add_argument('--ops', type=int, default=0, metavar='N',
                        help="also list ONNX Runtime's N most expensive node kinds at each scale (its profiler)")
    parser.add_argument('--target', choices=('portable', 'onnxruntime-cpu'), default='portable',
                        help='which graph to time: the portable one (default) or the one for ONNX Runtime\'s CPU '
                        'provider (python -m srconvnet.export --target)')
    parser.add_argument('--json', default=None, help='write the results to this JSON file too')
    args = parser.parse_args(argv)
    if args.runs < 1 or args.threads < 1 or min(args.out_size) < 1 or args.ops < 0:
        parser.error('--runs, --threads and --out-size must be positive, --ops 0 or more')
    if args.cpu_time and args.threads != 1:
        parser.error('--cpu-time needs --threads 1 (other threads\' CPU time would not be counted)')
    torch.set_num_threads(args.threads)
    machine = machine_info(torch.device('cpu'))
    machine.update({'onnxruntime': ort.__version__, 'ort_spinning': args.spinning})
    print(f'{describe_machine(machine)}, onnxruntime {ort.__version__} (CPU provider, {args.threads} intra-op '
          f'threads, ORT_ENABLE_ALL, spinning {"on" if args.spinning else "off"}), '
          f'graph exported for target {args.target}, {"thread CPU" if args.cpu_time else "wall"} time')
    print('| scale | LR input | PyTorch median (min-max) | ONNX Runtime median (min-max) | ratio ORT / PyTorch (pairs) '
          '| max abs difference |')
    print('|---|---|---|---|---|---|')
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for scale in args.scales:
            size = lr_size(scale, args.out_size)
            torch.manual_seed(0)
            model = SRConvNet(upscale=scale).eval()
            path = export(model, os.path.join(folder, f'srconvnet_x{scale}.onnx'), target=args.target)
            ort_session = session(path, args.threads, args.spinning)
            x = torch.rand(1, 3, *size)
            feed = {'lq': x.numpy()}

            def run_torch():
                with torch.inference_mode():
                    return model(x)

            difference = float(np.abs(ort_session.run(None, feed)[0] - run_torch().numpy()).max())
            times = time_alternately({'pytorch': run_torch, 'onnxruntime': lambda: ort_session.run(None, feed)},
                                     args.runs, args.warmup, time.thread_time if args.cpu_time else time.perf_counter)
            pairs = [a / b for a, b in zip(times['onnxruntime'], times['pytorch'])]
            ratio = statistics.median(times['onnxruntime']) / statistics.median(times['pytorch'])
            row = {'scale': scale, 'lr_size': size, 'times_s': times, 'ratio': ratio, 'pair_ratios': pairs,
                   'max_abs_difference': difference}
            if args.ops:
                row['ops'] = ort_breakdown(path, args.threads, feed, args.ops, folder)
            results.append(row)
            print(f'| ×{scale} | {size[0]}×{size[1]} | {_fmt(times["pytorch"])} | {_fmt(times["onnxruntime"])} | '
                  f'{ratio:.2f} ({min(pairs):.2f}-{max(pairs):.2f}) | {difference:.1e} |', flush=True)
    for row in results:
        if 'ops' in row:
            print_operator_table(f'×{row["scale"]} ONNX Runtime by node kind (one profiled run)', ('nodes', 'ms'),
                                 [(op['op'], op['input_shapes'], op['nodes'], op['ms'], op['share'])
                                  for op in row['ops']])
    if args.json:
        report = {'args': vars(args), 'machine': machine, 'results': results}
        atomic_write(args.json, json.dumps(report, indent=1).encode('utf-8'))


if __name__ == '__main__':
    main()
