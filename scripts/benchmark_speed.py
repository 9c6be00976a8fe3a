"""SRConvNet latency and peak memory at a 720p output, with BasicSR's EDSR-baseline timed in the same process.

Usage (the numbers of docs/speed.md; 2 threads as on the 2-core CI machine)::

    PYTHONPATH=$PWD python scripts/benchmark_speed.py --threads 2 --runs 5
    PYTHONPATH=$PWD python scripts/benchmark_speed.py --scales 4 --precision bf16        # reduced precision
    PYTHONPATH=$PWD python scripts/benchmark_speed.py --scales 4 --psnr --precision bf16  # its PSNR cost
    PYTHONPATH=$PWD python scripts/benchmark_speed.py --device cuda --precision fp16 --channels-last --compile
    PYTHONPATH=$PWD python scripts/benchmark_speed.py --scales 3 --ops 25    # where SRConvNet's time goes, by operator

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
"""
import argparse
import json
import math
import multiprocessing
import os
import statistics
import time
from contextlib import nullcontext

# torch.profiler (--ops) on a CPU-only machine: keep kineto's missing-GPU error line off stderr
os.environ.setdefault('KINETO_LOG_LEVEL', '5')
import torch  # noqa: E402  (after the kineto setting)

import srconvnet_plugin  # noqa: F401  (applies the basicsr compatibility shims)
from basicsr.archs.edsr_arch import EDSR
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.atomic_write import atomic_write
from srconvnet_plugin.utils.profiling import describe_machine, machine_info

OUT_SIZE = (720, 1280)
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
# SRConvNet's multiply-accumulates for a 720p output with the default config, FFTs included (SPEC.md)
SRCONVNET_MACS = {2: 81.74e9, 3: 39.19e9, 4: 25.28e9}


def lr_size(scale, out_size=OUT_SIZE):
    """LR input size whose ×``scale`` output covers ``out_size``."""
    return tuple(math.ceil(n / scale) for n in out_size)


def build(name, scale):
    """A randomly initialised model (seeded) in eval mode: ``'srconvnet'`` or ``'edsr'`` (EDSR-baseline)."""
    torch.manual_seed(0)
    if name == 'srconvnet':
        return SRConvNet(upscale=scale).eval()
    if name == 'edsr':
        return EDSR(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=scale, res_scale=1,
                    img_range=255., rgb_mean=[0.4488, 0.4371, 0.4040]).eval()
    raise ValueError(f'unknown model {name!r}: expected srconvnet or edsr')


def runner(model, x, device, precision='fp32', channels_last=False, compile_model=False):
    """A function that runs one synchronised forward pass of ``model`` on ``x`` under ``torch.inference_mode``."""
    model = model.to(device)
    x = x.to(device)
    if channels_last:
        # not model.to(memory_format=...): it refuses SRConvNet's 5-D kernel banks; 4-D conv weights are what it moves
        for p in model.parameters():
            if p.dim() == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if compile_model:
        model = torch.compile(model)
    dtype = PRECISIONS[precision]

    def run():
        amp = torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
        with torch.inference_mode(), amp:
            out = model(x)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        return out

    return run


def time_alternately(runs, repeats, warmup=1, clock=time.perf_counter):
    """Seconds per call of each function in ``runs`` (dict), called in turn ``repeats`` times after ``warmup``
    (``clock``: wall time by default)."""
    for _ in range(warmup):
        for run in runs.values():
            run()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = clock()
            run()
            times[name].append(clock() - start)
    return times


def _proc_status_bytes(field):
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f'/proc/self/status has no {field} line')


def _cpu_peak_child(queue, name, scale, size, precision, channels_last, threads):
    torch.set_num_threads(threads)
    run = runner(build(name, scale), torch.rand(1, 3, *size), torch.device('cpu'), precision, channels_last)
    try:  # restart the peak-RSS mark (VmHWM) here, so imports and set-up do not count
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass
    before = _proc_status_bytes('VmRSS')
    run()
    queue.put(_proc_status_bytes('VmHWM') - before)


def peak_memory(name, scale, size, device, precision='fp32', channels_last=False, threads=None):
    """Extra memory (bytes) a forward pass on a 1×3×``size`` input needs.

    CUDA: peak allocated memory. CPU: growth of the peak resident set in a fresh process (allocator caches and
    earlier models would hide it here).
    """
    if device.type == 'cuda':
        run = runner(build(name, scale), torch.rand(1, 3, *size), device, precision, channels_last)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run()
        return torch.cuda.max_memory_allocated(device) - base
    ctx = multiprocessing.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_cpu_peak_child,
                       args=(queue, name, scale, size, precision, channels_last, threads or torch.get_num_threads()))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def psnr_vs_fp32(scale, precision, device, weights=None, channels_last=False):
    """PSNR (dB, 8-bit RGB, border ``scale`` cropped) of SRConvNet's ``precision`` outputs against its float32 ones.

    On scikit-image photographs (astronaut, chelsea, coffee, rocket) downscaled with BasicSR's MATLAB-style bicubic
    ``imresize``. ``weights``: a BasicSR/authors' checkpoint; default: the seeded random initialisation.
    """
    import numpy as np
    from skimage import data

    from basicsr.metrics import calculate_psnr
    from basicsr.utils import tensor2img
    from basicsr.utils.matlab_functions import imresize
    from srconvnet.checkpoints import load_state_dict, strip_state_dict

    model = build('srconvnet', scale)
    if weights:
        model.load_state_dict(strip_state_dict(load_state_dict(weights)), strict=True)
    results = {}
    for photo in ('astronaut', 'chelsea', 'coffee', 'rocket'):
        hr = getattr(data, photo)().astype(np.float32) / 255.
        hr = hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale]
        lr = torch.from_numpy(np.ascontiguousarray(imresize(hr, 1 / scale).clip(0, 1))).permute(2, 0, 1)[None]
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
    parser.add_argument('--json', default=None, help='write the results to this JSON file too')
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error(f'--runs must be at least 1, got {args.runs}')
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
    machine = machine_info(device)
    print(f'{describe_machine(machine)}, SRConvNet {args.precision}{" channels-last" if args.channels_last else ""}'
          f'{" compiled" if args.compile else ""}, EDSR-baseline fp32{_allocator_settings()}')
    print('| scale | LR input | SRConvNet median (min-max) | EDSR-baseline median (min-max) | ratio (pairs) | '
          'SRConvNet GMAC/s | peak memory SRConvNet / EDSR |')
    print('|---|---|---|---|---|---|---|')
    results = []
    for scale in args.scales:
        size = lr_size(scale, args.out_size)
        x = torch.rand(1, 3, *size)
        runs = {
            'srconvnet': runner(build('srconvnet', scale), x, device, args.precision, args.channels_last,
                                args.compile),
            'edsr': runner(build('edsr', scale), x, device),
        }
        times = time_alternately(runs, args.runs, args.warmup)
        ratio = statistics.median(times['srconvnet']) / statistics.median(times['edsr'])
        pair_ratios = [a / b for a, b in zip(times['srconvnet'], times['edsr'])]
        # MACs scale with the output area (the FFTs' log factor aside)
        macs = SRCONVNET_MACS[scale] * math.prod(size) / math.prod(lr_size(scale))
        row = {'scale': scale, 'lr_size': size, 'times_s': times, 'ratio': ratio, 'pair_ratios': pair_ratios,
               'srconvnet_gmacs_per_s': macs / statistics.median(times['srconvnet']) / 1e9}
        memory = '-'
        if not args.no_memory:
            row['peak_memory_bytes'] = {
                name: peak_memory(name, scale, size, device, args.precision if name == 'srconvnet' else 'fp32',
                                  args.channels_last and name == 'srconvnet', args.threads)
                for name in runs}
            memory = ' / '.join(f'{v / 2**20:.0f} MiB' for v in row['peak_memory_bytes'].values())
        if args.psnr:
            row['psnr_vs_fp32'] = psnr_vs_fp32(scale, args.precision, device, args.weights, args.channels_last)
        if args.ops:
            row['ops'] = operator_breakdown(runs['srconvnet'], device, ops_passes, args.ops)
        results.append(row)
        print(f'| ×{scale} | {size[0]}×{size[1]} | {_fmt(times["srconvnet"])} | {_fmt(times["edsr"])} | '
              f'{ratio:.2f} ({min(pair_ratios):.2f}-{max(pair_ratios):.2f}) | {row["srconvnet_gmacs_per_s"]:.0f} | '
              f'{memory} |', flush=True)
    for row in results:
        if 'ops' in row:
            print(f'\n# ×{row["scale"]} SRConvNet by operator (self time, min of {ops_passes} profiled passes)')
            print('| operator | input shapes | calls | self ms | share |')
            print('|---|---|---|---|---|')
            for op in row['ops']:
                print(f'| {op["op"]} | {op["input_shapes"][:90]} | {op["calls"]} | {op["self_ms"]:.1f} | '
                      f'{op["share"]:.1%} |')
    for row in results:
        if 'psnr_vs_fp32' in row:
            values = ', '.join(f'{k} {v:.2f} dB' for k, v in row['psnr_vs_fp32'].items())
            print(f'# ×{row["scale"]} {args.precision} vs fp32 PSNR: {values}')
    if args.json:
        atomic_write(args.json, json.dumps({'args': vars(args), 'machine': machine, 'results': results}, indent=1).encode('utf-8'))


if __name__ == '__main__':
    main()
