"""Latency and peak memory of a forward pass, measured the same way for every network.

Three functions, usable on their own (e.g. by a speed benchmark)::

    from srconvnet_plugin.measure.profiling import measure_latency, cuda_peak_memory, cpu_peak_memory_in_fresh_process

    lat = measure_latency(lambda: model(x), runs=10, warmup=3, device=x.device)
    lat.median_ms, lat.iqr_ms                       # median and interquartile range over the timed runs
    mem = cuda_peak_memory(lambda: model(x), device='cuda')            # CUDA: torch's max allocated
    mem = cpu_peak_memory_in_fresh_process({'type': 'SRConvNet', 'upscale': 4}, (3, 180, 320))  # CPU: peak RSS

``measure_latency`` runs ``warmup`` untimed calls, then times each of ``runs`` calls separately with
``time.perf_counter``, calling ``torch.cuda.synchronize`` before starting and after finishing each call on CUDA so
the asynchronous kernels are inside the measurement. Run it under ``torch.no_grad()`` / ``torch.inference_mode()``
as you would in deployment.

Memory is reported as a ``Memory`` with ``peak_bytes`` (absolute) and ``forward_bytes`` (the peak minus what was
held just before the forward pass: the forward pass's own working memory, the comparable number across networks):
on CUDA from ``torch.cuda.max_memory_allocated`` (tensors, not the allocator's cache); on CPU from the process's
peak resident set size (``VmHWM``) during the first forward pass of a fresh Python process per network, so that
one network's allocations cannot hide another's, with the peak reset by writing ``5`` to
``/proc/self/clear_refs`` (Linux; elsewhere the lifetime peak ``ru_maxrss`` is used and ``reset`` is False).

The fresh process is ``python -m srconvnet_plugin.measure.profiling '<arch opt as JSON>' C H W``, which builds the network
with ``basicsr.archs.build_network`` (any registered arch, plugin archs included; ``--builder module:function`` names
another builder, e.g. the comparison's, which also builds spandrel's archs) and prints a JSON line.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from srconvnet_plugin.measure.benchmark_helpers import peak_rss_bytes, proc_status_bytes, reset_peak_rss, synchronize


@dataclass
class Latency:
    """Per-call wall time in milliseconds: median, interquartile range, extremes and every timed run."""
    median_ms: float
    iqr_ms: float
    min_ms: float
    max_ms: float
    times_ms: list = field(default_factory=list)

    @classmethod
    def from_times(cls, times_ms):
        """The summary of per-call times in milliseconds (at least one)."""
        q25, q75 = np.percentile(times_ms, [25, 75])
        return cls(median_ms=float(statistics.median(times_ms)), iqr_ms=float(q75 - q25), min_ms=float(min(times_ms)),
                   max_ms=float(max(times_ms)), times_ms=[float(t) for t in times_ms])

    def as_dict(self):
        return asdict(self)


@dataclass
class Memory:
    """Peak memory of one forward pass in bytes; ``kind`` is 'cuda_max_allocated' or 'cpu_peak_rss'."""
    peak_bytes: int
    forward_bytes: int
    kind: str
    reset: bool = True

    def as_dict(self):
        return asdict(self)


def measure_latency(fn, runs=10, warmup=3, device='cpu'):
    """Time ``fn()`` ``runs`` times after ``warmup`` untimed calls; synchronised on CUDA. Returns a ``Latency``."""
    if runs < 1:
        raise ValueError(f'runs must be at least 1, got {runs}')
    if warmup < 0:
        raise ValueError(f'warmup must be non-negative, got {warmup}')
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(runs):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append((time.perf_counter() - start) * 1e3)
    return Latency.from_times(times)


def cuda_peak_memory(fn, device='cuda', warmup=True):
    """Peak CUDA memory allocated while ``fn()`` runs (after one warm-up call if ``warmup``). Returns a ``Memory``."""
    if warmup:
        fn()
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return Memory(peak_bytes=int(peak), forward_bytes=int(peak - before), kind='cuda_max_allocated')


def cpu_peak_memory(fn, warmup=True):
    """Peak resident set size of this process while ``fn()`` runs (after one warm-up call if ``warmup``).

    Returns a ``Memory``. Meaningful in a process that has done nothing else: use
    ``cpu_peak_memory_in_fresh_process`` to compare networks.
    """
    if warmup:
        fn()
    reset = reset_peak_rss()
    rss = proc_status_bytes('VmRSS') or 0
    fn()
    peak = peak_rss_bytes()  # where the reset failed: the lifetime peak, which may include earlier allocations
    reset = reset and proc_status_bytes('VmHWM') is not None
    return Memory(peak_bytes=peak, forward_bytes=max(peak - rss, 0), kind='cpu_peak_rss', reset=reset)


def cpu_peak_memory_in_fresh_process(arch_opt, input_shape, threads=None, timeout=600, builder=None):
    """Peak RSS of one forward pass of ``build_network(arch_opt)`` on a random ``(1, *input_shape)`` input.

    Runs ``python -m srconvnet_plugin.measure.profiling`` in a new process (same interpreter and ``sys.path``) and returns
    its ``Memory``. ``arch_opt`` is a BasicSR ``network_g`` dict (JSON-serialisable); ``threads`` sets
    ``torch.set_num_threads`` there (default: torch's choice); ``builder`` ('module:function', default basicsr's
    ``build_network``) is what turns ``arch_opt`` into the network there.
    """
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([pkg_root] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p])
    cmd = [sys.executable, '-m', 'srconvnet_plugin.measure.profiling', json.dumps(arch_opt)]
    cmd += [str(v) for v in input_shape]
    if threads:
        cmd += ['--threads', str(threads)]
    if builder:
        cmd += ['--builder', builder]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f'memory measurement of {arch_opt} failed (exit {proc.returncode}): {proc.stderr[-2000:]}')
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return Memory(**result)


def main(argv=None):
    """Entry point of the fresh process: build the network, run it once, print its ``Memory`` as JSON."""
    parser = argparse.ArgumentParser(description='Peak CPU memory of one forward pass of a registered arch.')
    parser.add_argument('arch_opt', help="network_g options as JSON, e.g. '{\"type\": \"SRConvNet\"}'")
    parser.add_argument('shape', nargs=3, type=int, metavar=('C', 'H', 'W'), help='input shape')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch decides)')
    parser.add_argument('--builder', default='basicsr.archs:build_network',
                        help="'module:function' that builds the network from the options (default: basicsr's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    import importlib

    import srconvnet_plugin  # noqa: F401  (basicsr import shims; registers the plugin archs)

    module, _, function = args.builder.partition(':')
    model = getattr(importlib.import_module(module), function)(json.loads(args.arch_opt)).eval()
    x = torch.rand(1, *args.shape)
    with torch.no_grad():  # the first forward pass of a fresh process: one-time buffers are part of its peak
        memory = cpu_peak_memory(lambda: model(x), warmup=False)
    print(json.dumps(memory.as_dict()))


if __name__ == '__main__':
    main()
