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
import multiprocessing
import os
import statistics
import subprocess
import sys
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
# --isa: the environment that caps torch's own kernels (ATen), oneDNN and MKL at an instruction set, so that an
# AVX-512 machine measures what an AVX2-only CPU (AMD Zen 2/3, Intel consumer chips since Alder Lake) runs; read once
# when torch starts, hence set for a child process
ISA_ENV = {'avx2': {'ATEN_CPU_CAPABILITY': 'avx2', 'ONEDNN_MAX_CPU_ISA': 'AVX2', 'MKL_ENABLE_INSTRUCTIONS': 'AVX2'}}
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


def print_operator_table(title, columns, rows):
    """Print a Markdown table of operators under ``# title``: rows (operator, input shapes, count, ms, share), the
    names of the count and ms columns in ``columns``."""
    print(f'\n# {title}')
    print(f'| operator | input shapes | {columns[0]} | {columns[1]} | share |')
    print('|---|---|---|---|---|')
    for op, shapes, count, ms, share in rows:
        print(f'| {op} | {str(shapes)[:90]} | {count} | {ms:.1f} | {share:.1%} |')


def time_alternately(runs, repeats, warmup=1, clock=time.perf_counter):
    """Seconds per call of each function in ``runs`` (dict), called in turn ``repeats`` times after ``warmup``
    (``clock``: wall time, or ``time.process_time`` for the CPU time of a single-threaded process)."""
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


def isa_environment(isa):
    """Whether this process was started with the variables of ``ISA_ENV[isa]``."""
    return all(os.environ.get(k) == v for k, v in ISA_ENV[isa].items())


def isa_note(isa):
    """', instruction set capped at ...' for the header line, or '' without --isa."""
    if isa is None:
        return ''
    settings = ' '.join(f'{k}={v}' for k, v in ISA_ENV[isa].items())
    return f', instruction set capped at {isa.upper()} ({settings})'


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
        argv = sys.argv[1:] if argv is None else list(argv)
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.pathsep.join(p for p in (repo, os.environ.get('PYTHONPATH')) if p)
        child = subprocess.run([sys.executable, os.path.abspath(__file__), *argv],
                               env=dict(os.environ, PYTHONPATH=path, **ISA_ENV[args.isa]))
        if child.returncode:
            raise SystemExit(child.returncode)
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
    machine['isa_cap'] = ISA_ENV[args.isa] if args.isa else None
    print(f'{describe_machine(machine)}{isa_note(args.isa)}, SRConvNet {args.precision}'
          f'{" channels-last" if args.channels_last else ""}{" compiled" if args.compile else ""}, EDSR-baseline fp32'
          f'{_allocator_settings()}{", CPU time" if args.cpu_time else ", wall time"}')
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
