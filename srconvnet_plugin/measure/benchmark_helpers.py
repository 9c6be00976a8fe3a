"""What the benchmark scripts (``scripts/benchmark_*.py``, ``scripts/gpu_benchmark.py``) share, imported normally::

    from srconvnet_plugin.measure.benchmark_helpers import machine_info, describe_machine, time_alternately

* the machine header: :func:`machine_info` (date, torch, threads, device, CPU model and the flags that decide which
  kernels torch can use) and :func:`describe_machine`, its one-line ``# ...`` form;
* instruction-set capping (:data:`ISA_ENV`, :func:`run_capped`): the one set of environment variables that makes an
  AVX-512 machine run what an AVX2-only CPU runs;
* peak memory: :func:`proc_status_bytes`, the one reader of ``/proc/self/status``, :func:`reset_peak_rss` and
  :func:`peak_rss_bytes`;
* timing: :func:`time_alternately` (A, B, A, B, ... so that load from other processes hits every contender alike);
* :func:`forward_peak_memory`: the extra memory one forward pass of :func:`build`'s model needs (CUDA: peak
  allocated; CPU: peak RSS growth in a fresh process);
* output: :func:`markdown_table` and :func:`print_operator_table`;
* the contenders and their inputs: :data:`OUT_SIZE`, :func:`lr_size`, :func:`build` (SRConvNet or the yardstick
  EDSR-baseline), :func:`runner` (one inference call), :func:`train_step` / :func:`train_batch` (one training step),
  :func:`photo_lr` (a photograph and its bicubic LR, the package's
  :func:`~srconvnet_plugin.data.data_preparation.bicubic_lr`).
"""
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------------------------
# the machine
# ----------------------------------------------------------------------------------------------------------------
#: the /proc/cpuinfo flags that decide which CPU kernels torch can use (bf16 and AMX matter for autocast)
CPU_FLAGS = ('avx2', 'avx512f', 'avx512_bf16', 'amx_tile', 'amx_bf16')


def cpu_info():
    """``{'model': ..., 'flags': [...]}``: the CPU's model name and which of :data:`CPU_FLAGS` it has (Linux
    ``/proc/cpuinfo``; ``None`` / ``[]`` elsewhere), for benchmark reports: machines differ (AVX-512, bf16, AMX)."""
    model, flags = None, set()
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name' and model is None:
                    model = value.strip()
                elif key.strip() == 'flags' and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return {'model': model, 'flags': [flag for flag in CPU_FLAGS if flag in flags]}


def machine_info(device):
    """What benchmark numbers were measured on: date, torch, threads, device, CPU model and flags, and which
    :data:`ISA_VARIABLES` are set (a benchmark's header line, :func:`describe_machine`, and its JSON's ``machine``)."""
    device = torch.device(device)
    info = {'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()), 'torch': torch.__version__,
            'threads': torch.get_num_threads(), 'device': str(device), 'cpu': cpu_info(),
            'cpu_capability': torch.backends.cpu.get_cpu_capability(), 'isa_env': isa_settings()}
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def describe_machine(info):
    """The one-line ``# ...`` header of a benchmark report for :func:`machine_info`'s ``info`` (with the
    instruction-set cap, where one is set)."""
    gpu = f', GPU {info["gpu"]}' if 'gpu' in info else ''
    isa = info.get('isa_env')
    cap = f', instruction set capped ({" ".join(f"{k}={v}" for k, v in isa.items())})' if isa else ''
    return (f'# {info["date"]}, torch {info["torch"]}, device {info["device"]}{gpu}, {info["threads"]} threads, '
            f'CPU {info["cpu"]["model"]} (flags: {" ".join(info["cpu"]["flags"]) or "none of note"}; '
            f'torch cpu capability {info["cpu_capability"]}){cap}')


# ----------------------------------------------------------------------------------------------------------------
# instruction-set capping
# ----------------------------------------------------------------------------------------------------------------
#: the environment that caps torch's own kernels (ATen), oneDNN and MKL at an instruction set, so that an AVX-512
#: machine measures what an AVX2-only CPU (AMD Zen 2/3, Intel consumer chips since Alder Lake) runs. All three are
#: needed: ATen alone leaves oneDNN's convolutions and MKL's FFTs and GEMMs on AVX-512. Read once when torch (and
#: the libraries it loads) start, hence set for a child process (:func:`run_capped`). ONNX Runtime has no such switch.
ISA_ENV = {'avx2': {'ATEN_CPU_CAPABILITY': 'avx2', 'ONEDNN_MAX_CPU_ISA': 'AVX2', 'MKL_ENABLE_INSTRUCTIONS': 'AVX2'}}
#: the variables of :data:`ISA_ENV`
ISA_VARIABLES = tuple(dict.fromkeys(name for env in ISA_ENV.values() for name in env))


def isa_settings():
    """``{name: value}`` of the :data:`ISA_VARIABLES` set in this process's environment."""
    return {name: os.environ[name] for name in ISA_VARIABLES if name in os.environ}


def isa_environment(isa):
    """Whether this process was started with the variables of ``ISA_ENV[isa]``."""
    return all(os.environ.get(k) == v for k, v in ISA_ENV[isa].items())


def run_capped(isa, script, argv):
    """Run ``python script *argv`` in a child process with ``ISA_ENV[isa]`` set (and the repository on
    ``PYTHONPATH``); its exit code."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (repo, os.environ.get('PYTHONPATH')) if p)
    return subprocess.run([sys.executable, os.path.abspath(script), *argv],
                          env=dict(os.environ, PYTHONPATH=path, **ISA_ENV[isa])).returncode


# ----------------------------------------------------------------------------------------------------------------
# peak memory
# ----------------------------------------------------------------------------------------------------------------
def proc_status_bytes(field):
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; ``None`` where there is no such
    file (not Linux) or line."""
    try:
        with open('/proc/self/status', encoding='ascii') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss():
    """Reset this process's peak RSS (``VmHWM``) to its current RSS; False where the kernel does not allow it."""
    try:
        with open('/proc/self/clear_refs', 'w', encoding='ascii') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_bytes():
    """Peak resident set size of this process in bytes: ``VmHWM`` (``ru_maxrss`` would include the parent's peak,
    which Linux carries across fork and exec), ``ru_maxrss`` where there is no ``/proc`` (an upper bound)."""
    peak = proc_status_bytes('VmHWM')
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ----------------------------------------------------------------------------------------------------------------
# timing and tables
# ----------------------------------------------------------------------------------------------------------------
def time_alternately(runs, repeats, warmup=1, clock=time.perf_counter):
    """Seconds per call of each function in ``runs`` (dict), called in turn ``repeats`` times after ``warmup``
    (``clock``: wall time, ``time.process_time`` / ``time.thread_time`` for CPU time of one thread)."""
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


def ort_session(path, threads, spinning=False, profile_prefix=None):
    """An ONNX Runtime CPU session on ``path`` with the settings the table is measured with."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry('session.intra_op.allow_spinning', '1' if spinning else '0')
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def markdown_table(columns, rows, head=True):
    """A Markdown table (lines joined by newlines, no trailing one) of ``rows`` (sequences of cells, formatted with
    ``str``) under the header ``columns``; ``head=False``: the rows only."""
    lines = [f'| {" | ".join(columns)} |', '|' + '---|' * len(columns)] if head else []
    lines += [f'| {" | ".join(str(cell) for cell in row)} |' for row in rows]
    return '\n'.join(lines)


def print_operator_table(title, columns, rows):
    """Print a Markdown table of operators under ``# title``: rows (operator, input shapes, count, ms, share), the
    names of the count and ms columns in ``columns``."""
    print(f'\n# {title}')
    print(markdown_table(('operator', 'input shapes', *columns, 'share'),
                         [(op, str(shapes)[:90], count, f'{ms:.1f}', f'{share:.1%}')
                          for op, shapes, count, ms, share in rows]))


# ----------------------------------------------------------------------------------------------------------------
# contenders and inputs
# ----------------------------------------------------------------------------------------------------------------
#: the output size the speed tables are measured at (720p)
OUT_SIZE = (720, 1280)
#: precision name -> autocast dtype (None: float32, no autocast)
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}
#: training mode -> (autocast dtype or None, channels-last)
TRAIN_MODES = {
    'fp32': (None, False),
    'bf16': (torch.bfloat16, False),
    'fp16': (torch.float16, False),
    'channels-last': (None, True),
    'bf16-channels-last': (torch.bfloat16, True),
    'fp16-channels-last': (torch.float16, True),
}


def lr_size(scale, out_size=OUT_SIZE):
    """LR input size whose ×``scale`` output covers ``out_size``."""
    return tuple(math.ceil(n / scale) for n in out_size)


def build(name, scale):
    """A randomly initialised model (seeded) in eval mode: ``'srconvnet'`` (the authors' default configuration) or
    ``'edsr'`` (the yardstick EDSR-baseline: ``EDSR(num_feat=64, num_block=16, res_scale=1, img_range=255)``)."""
    torch.manual_seed(0)
    if name == 'srconvnet':
        from srconvnet.archs.srconvnet_arch import SRConvNet
        return SRConvNet(upscale=scale).eval()
    if name == 'edsr':
        import srconvnet_plugin  # noqa: F401  (the basicsr compatibility shims, before basicsr)
        from basicsr.archs.edsr_arch import EDSR
        return EDSR(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=scale, res_scale=1,
                    img_range=255., rgb_mean=[0.4488, 0.4371, 0.4040]).eval()
    raise ValueError(f'unknown model {name!r}: expected srconvnet or edsr')


def synchronize(device):
    """Wait for ``device``'s queued kernels (CUDA); nothing on the CPU."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def runner(model, x, device, precision='fp32', channels_last=False, compile_model=False):
    """A function that runs one synchronised forward pass of ``model`` on ``x`` under ``torch.inference_mode``
    (``precision``: a key of :data:`PRECISIONS`, autocast)."""
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
        synchronize(device)
        return out

    return run


def train_batch(n, patch, scale, seed=0):
    """A random LR batch ``n x 3 x patch x patch`` in [0, 1] and its ``patch * scale`` ground truth."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, patch, patch, generator=g), torch.rand(n, 3, patch * scale, patch * scale, generator=g)


def train_step(model, lq, gt, device, mode='fp32', compile_model=False, compile_mode='default', lr=2e-4):
    """A function running one synchronised training step of ``model`` (forward, L1, backward, Adam) on ``lq``/``gt``.

    ``mode`` is a key of :data:`TRAIN_MODES`; ``compile_model`` compiles the forward (``torch.compile``, mode
    ``compile_mode``; a string backend for tests may be given as ``compile_mode='backend:eager'``).
    """
    from srconvnet_plugin.models.precision_model import to_channels_last

    dtype, channels_last = TRAIN_MODES[mode]
    model = model.to(device).train()
    lq, gt = lq.to(device), gt.to(device)
    if channels_last:
        model = to_channels_last(model)
        lq, gt = (t.contiguous(memory_format=torch.channels_last) for t in (lq, gt))
    forward = model
    if compile_model:
        if compile_mode.startswith('backend:'):
            forward = torch.compile(model, backend=compile_mode[len('backend:'):])
        else:
            forward = torch.compile(model, mode=compile_mode)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99))
    scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext():
            loss = F.l1_loss(forward(lq), gt)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        synchronize(device)
        return loss.detach()

    return step


def photo_lr(name, scale):
    """The scikit-image photograph ``name`` (RGB, mod-cropped to ``scale``) and its MATLAB-style bicubic LR
    (:func:`~srconvnet_plugin.data.data_preparation.bicubic_lr`, 8-bit), both as 1×3×H×W float tensors in [0, 1]."""
    import numpy as np
    from skimage import data

    from srconvnet_plugin.data.data_preparation import bicubic_lr

    hr = getattr(data, name)()
    if hr.ndim == 2:
        hr = np.repeat(hr[..., None], 3, axis=2)
    hr = np.ascontiguousarray(hr[:hr.shape[0] // scale * scale, :hr.shape[1] // scale * scale, :3])
    lr = bicubic_lr(hr, scale)
    return tuple(torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255. for img in (hr, lr))


def _cpu_peak_child(queue, name, scale, size, precision, channels_last, threads):
    from srconvnet_plugin.measure.profiling import cpu_peak_memory

    torch.set_num_threads(threads)
    run = runner(build(name, scale), torch.rand(1, 3, *size), torch.device('cpu'), precision, channels_last)
    queue.put(cpu_peak_memory(run, warmup=False).forward_bytes)


def forward_peak_memory(name, scale, size, device, precision='fp32', channels_last=False, threads=None):
    """Extra memory (bytes) a forward pass of ``build(name, scale)`` on a 1×3×``size`` input needs (:func:`runner`'s
    settings).

    CUDA: peak allocated memory. CPU: growth of the peak resident set in a fresh process (allocator caches and
    earlier models would hide it here), ``threads`` torch threads there (default: this process's number).
    """
    from srconvnet_plugin.measure.profiling import cuda_peak_memory

    device = torch.device(device)
    if device.type == 'cuda':
        run = runner(build(name, scale), torch.rand(1, 3, *size), device, precision, channels_last)
        return cuda_peak_memory(run, device, warmup=False).forward_bytes
    ctx = multiprocessing.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_cpu_peak_child,
                       args=(queue, name, scale, size, precision, channels_last, threads or torch.get_num_threads()))
    proc.start()
    result = queue.get()
    proc.join()
    return result
