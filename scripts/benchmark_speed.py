"""SRConvNet latency and peak memory at a 720p output, with BasicSR's EDSR-baseline timed in the same process.

Usage (the numbers of docs/speed.md; 2 threads as on the 2-core CI machine)::

    PYTHONPATH=$PWD python scripts/benchmark_speed.py --threads 2 --runs 5
    PYTHONPATH=$PWD python scripts/benchmark_speed.py --scales 4 --precision bf16        # reduced precision
    PYTHONPATH=$PWD python scripts/benchmark_speed.py --scales 4 --psnr --precision bf16  # its PSNR cost
    PYTHONPATH=$PWD python scripts/benchmark_speed.py --device cuda --precision fp16 --channels-last --compile
    PYTHONPATH=$PWD python scripts/benchmark_speed.py --scales 3 --ops 25    # where SRConvNet's time goes, by operator
    PYTHONPATH=$PWD python scripts/benchmark_speed.py --threads 2 --isa avx2    # an AVX2-only CPU, on an AVX-512 one

For each scale the LR input is ceil(720 / s) × ceil(1280 / s) (180×320 at ×4), so the output is 720p (720×1281 at ×3).
SRConvNet (authors' default config, random weights: speed does not depend on them) and the yardstick EDSR-baseline
(``EDSR(num_feat=64, num_block=16, res_scale=1, img_range=255)`` at the same scale, float32, eager, contiguous) are
run alternately (A, B, A, B, ...) after a warm-up, so load from other processes hits both alike; the table gives
median and spread (min-max) of each and the ratio of the medians. Peak memory is the extra resident memory (CPU, in a
fresh process per model) or the peak allocated memory (CUDA) of one forward pass. The ratio column also gives the
range of the per-pair ratios (run i of SRConvNet over run i of EDSR-baseline, timed back to back): on a shared
machine whose speed drifts, that range shows how far a single comparison can move.

``--ops N`` adds SRConvNet's N most expensive operators at each scale (``torch.profiler``: self time per operator
and input shapes, the minimum over ``min(--runs, 3)`` separately profiled forward passes, which is steadier than one
pass on a machine whose speed drifts).

``--isa avx2`` caps torch's own kernels, oneDNN and MKL at AVX2 (``ATEN_CPU_CAPABILITY=avx2``,
``ONEDNN_MAX_CPU_ISA=AVX2``, ``MKL_ENABLE_INSTRUCTIONS=AVX2``; the benchmark reruns itself in a child process with
them set, since they are read when torch starts): on an AVX-512 machine it measures the kernels an AVX2-only CPU
runs (emulation: same caches, memory and clock as the host). The header line names the cap.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

# torch.profiler (--ops) on a CPU-only machine: keep kineto's missing-GPU error line off stderr
os.environ.setdefault('KINETO_LOG_LEVEL', '5')
import torch  # noqa: E402  (after the kineto setting)

from srconvnet.atomic_write import atomic_write  # noqa: E402
from srconvnet_plugin.measure.benchmark_helpers import (ISA_ENV, OUT_SIZE, PRECISIONS, build,  # noqa: E402
                                                         describe_machine, forward_peak_memory, isa_environment,
                                                         lr_size, machine_info, markdown_table, photo_lr,
                                                         print_operator_table, run_capped, runner, time_alternately)

# SRConvNet's multiply-accumulates for a 720p output with the default config, FFTs included (SPEC.md)
SRCONVNET_MACS = {2: 81.74e9, 3: 39.19e9, 4: 25.28e9}


def psnr_vs_fp32(scale, precision, device, weights=None, channels_last=False):
    """PSNR (dB, 8-bit RGB, border ``scale`` cropped) of SRConvNet's ``precision`` outputs against its float32 ones.

    On scikit-image photographs (astronaut, chelsea, coffee, rocket) downscaled to 8-bit LR images with BasicSR's
    MATLAB-style bicubic ``imresize`` (``benchmark_helpers.photo_lr``). ``weights``: a BasicSR/authors' checkpoint; default: the seeded random initialisation.
    """
    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img
    from srconvnet.checkpoints import load_state_dict, strip_state_dict

    model = build('srconvnet', scale)
    if weights:
        model.load_state_dict(strip_state_dict(load_state_dict(weights)), strict=True)
    results = {}
    for photo in ('astronaut', 'chelsea', 'coffee', 'rocket'):
        _, lr = photo_lr(photo, scale)
        ref = tensor2img(runner(model, lr, device, 'fp32', channels_last)().float().cpu())
        out = tensor2img(runner(model, lr, device, precision, channels_last)().float().cpu())
        results[photo] = float(calculate_psnr(out, ref, crop_border=scale))
    return results


# environment variables that change how freed memory is reused (glibc malloc, PyTorch's huge-page switch)
ALLOCATOR_ENV = ('MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_', 'THP_MEM_ALLOC_ENABLE',
                 'LD_PRELOAD')


def _allocator_settings():
    """', allocator: NAME=VALUE ...' for the allocator variables set in the environment, else ', default allocator'."""
    found = [f'{name}={os.environ[name]}' for name in ALLOCATOR_ENV if os.environ.get(name)]
    return f', allocator: {" ".join(found)}' if found else ', default allocator'


def operator_breakdown(run, device, passes=3, top=20):
    """SRConvNet's ``top`` most expensive operators over ``passes`` profiled calls of ``run``.

    Rows (most expensive first): operator name, input shapes, calls per pass and self time in ms (CPU, or the device
    on CUDA), each the minimum over the passes; ``share`` is the fraction of the summed minima of all operators.
    """
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    best = {}
    for _ in range(passes):
        with profile(activities=activities, record_shapes=True) as prof:
            run()
        for event in prof.key_averages(group_by_input_shape=True):
            ms = (event.self_device_time_total if device.type == 'cuda' else event.self_cpu_time_total) / 1e3
            key = (event.key, str(event.input_shapes))
            calls, old = best.get(key, (event.count, float('inf')))
            best[key] = (min(calls, event.count), min(old, ms))
    total = sum(ms for _, ms in best.values()) or 1.0
    rows = sorted(best.items(), key=lambda item: -item[1][1])[:top]
    return [{'op': op, 'input_shapes': shapes, 'calls': calls, 'self_ms': ms, 'share': ms / total}
            for (op, shapes), (calls, ms) in rows]


def _fmt(times):
    med = statistics.median(times)
    return f'{med * 1e3:.0f} ms ({min(times) * 1e3:.0f}-{max(times) * 1e3:.0f})'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default: cpu)')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], choices=[2, 3, 4])
    parser.add_argument('--runs', type=int, default=5, help='timed runs of each model (default: 5)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed runs first (default: 1)')
    parser.add_argument('--precision', default='fp32', choices=sorted(PRECISIONS),
                        help='SRConvNet under autocast to this dtype (FFTs stay float32); EDSR stays fp32')
    parser.add_argument('--channels-last', action='store_true', help='channels-last model and input (SRConvNet)')
    parser.add_argument('--compile', action='store_true', help='torch.compile SRConvNet (compile time excluded)')
    parser.add_argument('--out-size', type=int, nargs=2, default=OUT_SIZE, metavar=('H', 'W'),
                        help='output size; the LR input is ceil(H / s) × ceil(W / s) (default: 720 1280)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory measurement')
    parser.add_argument('--psnr', action='store_true', help='also report PSNR of --precision outputs vs fp32')
    parser.add_argument('--weights', default=None, help='checkpoint for --psnr (default: random init)')
    parser.add_argument('--ops', type=int, default=0, metavar='N',
                        help="also list SRConvNet's N most expensive operators at each scale (torch.profiler)")
    parser.add_argument('--cpu-time', action='store_true',
                        help='time CPU seconds of the process instead of wall time (with --threads 1: steadier on a '
                             'machine that other processes load)')
    parser.add_argument('--isa', default=None, choices=sorted(ISA_ENV),
                        help='cap torch (ATen), oneDNN and MKL at this instruction set, to measure on an AVX-512 '
                             'machine what an AVX2-only CPU runs (the benchmark reruns itself in a child process '
                             'with the variables set)')
    parser.add_argument('--json', default=None, help='write the results to this JSON file too')
    args = parser.parse_args(argv)
    if args.isa and not isa_environment(args.isa):
        # torch, oneDNN and MKL read these variables when they start: the benchmark runs in a child that has them
        code = run_capped(args.isa, __file__, sys.argv[1:] if argv is None else list(argv))
        if code:
            raise SystemExit(code)
        return
    if args.runs < 1:
        parser.error(f'--runs must be at least 1, got {args.runs}')
    if args.cpu_time and args.threads != 1:
        parser.error('--cpu-time needs --threads 1 (with more threads, waiting threads count as CPU time)')
    if args.ops < 0:
        parser.error(f'--ops must be 0 or more, got {args.ops}')
    ops_passes = min(args.runs, 3)  # profiled forward passes per scale for --ops
    if min(args.out_size) < 1:
        parser.error(f'--out-size must be positive, got {args.out_size}')
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: CUDA is not available on this machine')
    if args.precision == 'fp16' and device.type == 'cpu':
        parser.error('--precision fp16 is for GPUs; on CPU use bf16')
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.isa and torch.backends.cpu.get_cpu_capability() != args.isa.upper():
        parser.error(f'--isa {args.isa}: torch runs with CPU capability {torch.backends.cpu.get_cpu_capability()}')
    machine = machine_info(device)
    print(f'{describe_machine(machine)}, SRConvNet {args.precision}'
          f'{" channels-last" if args.channels_last else ""}{" compiled" if args.compile else ""}, EDSR-baseline fp32'
          f'{_allocator_settings()}{", CPU time" if args.cpu_time else ", wall time"}')
    print(markdown_table(('scale', 'LR input', 'SRConvNet median (min-max)', 'EDSR-baseline median (min-max)',
                          'ratio (pairs)', 'SRConvNet GMAC/s', 'peak memory SRConvNet / EDSR'), []))
    results = []
    for scale in args.scales:
        size = lr_size(scale, args.out_size)
        x = torch.rand(1, 3, *size)
        runs = {
            'srconvnet': runner(build('srconvnet', scale), x, device, args.precision, args.channels_last,
                                args.compile),
            'edsr': runner(build('edsr', scale), x, device),
        }
        clock = time.process_time if args.cpu_time else time.perf_counter
        times = time_alternately(runs, args.runs, args.warmup, clock)
        ratio = statistics.median(times['srconvnet']) / statistics.median(times['edsr'])
        pair_ratios = [a / b for a, b in zip(times['srconvnet'], times['edsr'])]
        # MACs scale with the output area (the FFTs' log factor aside)
        macs = SRCONVNET_MACS[scale] * math.prod(size) / math.prod(lr_size(scale))
        row = {'scale': scale, 'lr_size': size, 'times_s': times, 'ratio': ratio, 'pair_ratios': pair_ratios,
               'srconvnet_gmacs_per_s': macs / statistics.median(times['srconvnet']) / 1e9}
        memory = '-'
        if not args.no_memory:
            row['peak_memory_bytes'] = {
                name: forward_peak_memory(name, scale, size, device, args.precision if name == 'srconvnet' else 'fp32',
                                  args.channels_last and name == 'srconvnet', args.threads)
                for name in runs}
            memory = ' / '.join(f'{v / 2**20:.0f} MiB' for v in row['peak_memory_bytes'].values())
        if args.psnr:
            row['psnr_vs_fp32'] = psnr_vs_fp32(scale, args.precision, device, args.weights, args.channels_last)
        if args.ops:
            row['ops'] = operator_breakdown(runs['srconvnet'], device, ops_passes, args.ops)
        results.append(row)
        print(markdown_table((), [(f'×{scale}', f'{size[0]}×{size[1]}', _fmt(times['srconvnet']), _fmt(times['edsr']),
                                   f'{ratio:.2f} ({min(pair_ratios):.2f}-{max(pair_ratios):.2f})',
                                   f'{row["srconvnet_gmacs_per_s"]:.0f}', memory)], head=False), flush=True)
    for row in results:
        if 'ops' in row:
            print_operator_table(f'×{row["scale"]} SRConvNet by operator (self time, min of {ops_passes} profiled '
                                 'passes)', ('calls', 'self ms'),
                                 [(op['op'], op['input_shapes'], op['calls'], op['self_ms'], op['share'])
                                  for op in row['ops']])
    for row in results:
        if 'psnr_vs_fp32' in row:
            values = ', '.join(f'{k} {v:.2f} dB' for k, v in row['psnr_vs_fp32'].items())
            print(f'# ×{row["scale"]} {args.precision} vs fp32 PSNR: {values}')
    if args.json:
        atomic_write(args.json, json.dumps({'args': vars(args), 'machine': machine, 'results': results}, indent=1).encode('utf-8'))


if __name__ == '__main__':
    main()
