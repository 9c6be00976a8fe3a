"""GPU numbers for the docs: training iterations/s and peak memory at the paper's per-GPU batch, and inference ms per
720p frame, for SRConvNet and EDSR-baseline; writes ``gpu_benchmark.json`` and ``gpu_benchmark.md`` to ``--out``.

Usage (``scripts/gpu_check.sh`` runs it after the CUDA tests)::

    PYTHONPATH=$PWD python scripts/gpu_benchmark.py --out gpu_check_out            # one CUDA GPU, ~5 minutes
    PYTHONPATH=$PWD python scripts/gpu_benchmark.py --dry-run --out /tmp/dry       # CPU, tiny sizes, seconds

* Training (SRConvNet, x4, the protocol's per-GPU batch: 64 HR patches of 256², i.e. 64 x 64x64 LR; one step is
  forward, L1, backward, Adam: ``benchmark_helpers.train_step``): fp32 / bf16 / fp16 autocast (fp16 with a GradScaler),
  each contiguous and channels-last, each eager and ``torch.compile``'d (mode ``default``). EDSR-baseline's fp32 and
  bf16 eager steps are measured too, as the yardstick. Reported: iterations/s (median step time over the timed steps)
  and peak allocated memory of the steps.
* Inference (x4, LR 180x320 -> 720x1280, batch 1, ``torch.inference_mode``: ``benchmark_helpers.runner``): SRConvNet and
  EDSR-baseline in fp32 / bf16 / fp16 autocast, eager; ms per frame (median).
* Dynamic depthwise convs, which form to train with: forward + backward of one 7x7 ``DynamicConv`` (64 channels, the
  training batch of 64x64 maps, channels-last as in the network) computed per sample (the module forward: one conv per
  sample) or with the batch folded into the conv groups (the authors' form: one conv with groups = B*C,
  ``dynamic_conv_grouped``), fp32 and bf16, eager and compiled; and SRConvNet's fp32 training step with every dynamic
  conv in the grouped form, eager and compiled, beside the module forward's rows above.

Each configuration runs inside its own try/except (a failure, e.g. out of memory or a compile error, is recorded with
its message and the next one runs) and within a time budget (``--config-budget`` seconds of timed steps; compile time
excluded but recorded); configurations that would start after ``--budget`` seconds in all (compiled ones: with less
than ``--compile-reserve`` seconds of it left) are recorded as skipped.
The JSON and the Markdown are rewritten after every configuration, so an interrupted run keeps what it measured.

``--dry-run``: on the CPU with tiny sizes (batch 2, 16x16 LR, 24x32 inference input), bf16 and fp32 only (fp16 needs
CUDA), compile with the ``eager`` backend (traces, does not generate kernels): checks the script end to end in seconds.
"""
import argparse
import json
import os
import statistics
import time
import traceback

import torch

from srconvnet.archs.srconvnet_arch import DynamicConv
from srconvnet.atomic_write import atomic_write
from srconvnet_plugin.measure.benchmark_helpers import (PRECISIONS, build, describe_machine, machine_info,
                                                         markdown_table, runner, synchronize, train_batch, train_step)

SCALE = 4
DYNCONV_FORMS = ('per-sample', 'grouped')


def dynamic_conv_grouped(conv, x):
    """``conv(x)`` for a ``DynamicConv`` ``conv``, from its own parameters, with the batch folded into the conv
    groups (the authors' form): one depthwise conv of the 1 x (B*C) x H x W map with groups = B*C, instead of the
    module forward's one conv per sample. The same numbers (to rounding)."""
    aggregation = conv.aggregation
    attention = conv.attention(x)
    b, c, h, w = x.shape
    k = aggregation.kernel_size
    weight = (attention @ aggregation.weight.flatten(1)).view(b * c, 1, k, k).to(x.dtype)
    bias = (attention @ aggregation.bias).flatten().to(x.dtype)
    out = torch.nn.functional.conv2d(x.reshape(1, b * c, h, w), weight, bias, padding=k // 2, groups=b * c)
    return out.view(b, c, h, w)


def use_grouped_dynamic_convs(model):
    """``model`` with every ``DynamicConv`` computed by ``dynamic_conv_grouped`` (an instance forward)."""
    for module in model.modules():
        if isinstance(module, DynamicConv):
            module.forward = lambda x, conv=module: dynamic_conv_grouped(conv, x)
    return model


def dynamic_conv_step(form, x, device, precision='fp32', compile_model=False, compile_mode='default'):
    """A function running one synchronised forward + backward of a 7x7 ``DynamicConv`` (C = channels of ``x``, 16
    kernels) on ``x`` in the given ``form`` ('per-sample': the module forward; 'grouped': ``dynamic_conv_grouped``)."""
    torch.manual_seed(0)
    conv = DynamicConv(x.shape[1], 7, 16).to(device)
    x = x.to(device).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    forward = conv if form == 'per-sample' else (lambda t: dynamic_conv_grouped(conv, t))
    if compile_model:
        forward = (torch.compile(forward, backend=compile_mode[len('backend:'):]) if compile_mode.startswith('backend:')
                   else torch.compile(forward, mode=compile_mode))
    dtype = PRECISIONS[precision]

    def step():
        conv.zero_grad(set_to_none=True)
        x.grad = None
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = forward(x).float().square().mean()
        loss.backward()
        synchronize(device)
        return loss.detach()

    return step


def plan(dry_run):
    """The configurations to measure, in order: ``[{'kind', 'net', 'mode' / 'precision', 'compile'}, ...]``."""
    precisions = ['fp32', 'bf16'] if dry_run else ['fp32', 'bf16', 'fp16']
    configs = []
    for compiled in (False, True):  # eager first: compile time is the budget's biggest risk
        # which dynamic-conv form to train with: measured first in each half (the open question they decide)
        configs += [{'kind': 'dynconv', 'net': 'dynconv', 'form': form, 'precision': p, 'compile': compiled}
                    for p in (('fp32', 'bf16') if not compiled else ('fp32', )) for form in DYNCONV_FORMS]
        configs.append({'kind': 'train', 'net': 'srconvnet', 'mode': 'fp32', 'compile': compiled,
                        'dynconv': 'grouped'})
        for precision in precisions:
            for channels_last in (False, True):
                mode = precision if not channels_last else ('channels-last' if precision == 'fp32' else
                                                             f'{precision}-channels-last')
                configs.append({'kind': 'train', 'net': 'srconvnet', 'mode': mode, 'compile': compiled})
        if not compiled:
            configs += [{'kind': 'train', 'net': 'edsr', 'mode': m, 'compile': False} for m in ('fp32', 'bf16')]
            configs += [{'kind': 'infer', 'net': net, 'precision': p, 'compile': False}
                        for net in ('srconvnet', 'edsr') for p in precisions]
    return configs


def _timed(fn, steps, budget_s, warmup):
    """Call ``fn`` ``warmup`` times, then up to ``steps`` times or until ``budget_s`` seconds have passed (at least
    twice); the per-call seconds."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < steps and (len(times) < 2 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def measure(config, args, device):
    """One configuration's numbers (a dict added to ``config``)."""
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    if config['kind'] == 'train':
        lq, gt = train_batch(args.batch, args.patch, SCALE)
        model = build(config['net'], SCALE)
        if config.get('dynconv') == 'grouped':
            model = use_grouped_dynamic_convs(model)
        fn = train_step(model, lq, gt, device, config['mode'], config['compile'], args.compile_mode)
    elif config['kind'] == 'dynconv':
        x = torch.randn(args.batch, args.channels, args.patch, args.patch, generator=torch.Generator().manual_seed(0))
        fn = dynamic_conv_step(config['form'], x, device, config['precision'], config['compile'], args.compile_mode)
    else:
        x = torch.rand(1, 3, *args.infer_size)
        fn = runner(build(config['net'], SCALE), x, device, config['precision'], False, config['compile'])
    fn()  # first call: compiles, autotunes, allocates
    first_s = time.perf_counter() - start
    times = _timed(fn, args.steps, args.config_budget, args.warmup)
    median = statistics.median(times)
    out = {'status': 'ok', 'first_call_s': first_s, 'times_s': times, 'median_s': median}
    if config['kind'] != 'infer':
        out['iters_per_s'] = 1 / median
    else:
        out['ms_per_frame'] = median * 1e3
    if device.type == 'cuda':
        out['peak_memory_bytes'] = torch.cuda.max_memory_allocated(device)
    return out


def _name(config):
    compiled = ' compiled' if config['compile'] else ''
    if config['kind'] == 'infer':
        return f'{config["net"]} {config["precision"]} inference'
    if config['kind'] == 'dynconv':
        return f'dynconv 7x7 {config["form"]} {config["precision"]}{compiled}'
    grouped = ' grouped-dynconv' if config.get('dynconv') == 'grouped' else ''
    return f'{config["net"]} {config["mode"]}{grouped}{compiled}'


def markdown(result):
    info, args = result['machine'], result['args']
    rows = result['results']
    train = [(f'{row["net"]} (grouped dynamic convs)' if row.get('dynconv') == 'grouped' else row['net'], row['mode'],
              'yes' if row['compile'] else 'no', *_cells(row)) for row in rows if row['kind'] == 'train']
    dynconv = [(row['form'], row['precision'], 'yes' if row['compile'] else 'no', *_cells(row))
               for row in rows if row['kind'] == 'dynconv']
    infer = [(row['net'], row['precision'], *_cells(row, train=False)) for row in rows if row['kind'] == 'infer']
    lines = [describe_machine(info), '',
             f'Training (x{SCALE}, batch {args["batch"]} of {args["patch"]}x{args["patch"]} LR, forward + L1 + '
             'backward + Adam):', '',
             markdown_table(('network', 'mode', 'compile', 'iterations/s', 'step ms', 'peak memory', 'first step s',
                             'status'), train),
             '', f'Dynamic depthwise conv (7x7, 16 kernels, {args["channels"]} channels, batch {args["batch"]} of '
             f'{args["patch"]}x{args["patch"]}, channels-last, forward + backward): per sample (the module forward) '
             'or with the batch folded into the conv groups (the authors\' form):', '',
             markdown_table(('form', 'precision', 'compile', 'steps/s', 'step ms', 'peak memory', 'first step s',
                             'status'), dynconv),
             '', f'Inference (x{SCALE}, LR {args["infer_size"][0]}x{args["infer_size"][1]}, batch 1, '
             'inference_mode):', '',
             markdown_table(('network', 'precision', 'ms per frame', 'peak memory', 'first call s', 'status'), infer)]
    return '\n'.join(lines) + '\n'


def _cells(row, train=True):
    """The measured cells of a result row: speed (iterations/s and step ms, or ms per frame), peak memory, first
    call, status."""
    if row['status'] != 'ok':
        first = f'{row["first_call_s"]:.1f}' if 'first_call_s' in row else '-'
        return ('-',) * (3 if train else 2) + (first, f'{row["status"]}: {row.get("error", "")[:120]}')
    memory = f'{row["peak_memory_bytes"] / 2**30:.2f} GiB' if 'peak_memory_bytes' in row else '-'
    speed = (f'{row["iters_per_s"]:.2f}', f'{row["median_s"] * 1e3:.1f}') if train else (f'{row["ms_per_frame"]:.1f}',)
    return (*speed, memory, f'{row["first_call_s"]:.1f}', 'ok')


def write(result, out_dir):
    paths = []
    for name, text in (('gpu_benchmark.json', json.dumps(result, indent=1)), ('gpu_benchmark.md', markdown(result))):
        path = os.path.join(out_dir, name)
        atomic_write(path, text.encode('utf-8'))
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default='gpu_check_out', help='output folder (default: gpu_check_out)')
    parser.add_argument('--device', default='cuda', help='default: cuda (cpu with --dry-run)')
    parser.add_argument('--dry-run', action='store_true', help='CPU, tiny sizes, a few steps (checks the script)')
    parser.add_argument('--batch', type=int, default=64, help='training LR patches per step (default: 64)')
    parser.add_argument('--patch', type=int, default=64, help='training LR patch size (default: 64, HR 256)')
    parser.add_argument('--channels', type=int, default=64,
                        help='channels of the dynamic-conv comparison (default: 64, the network\'s)')
    parser.add_argument('--infer-size', type=int, nargs=2, default=[180, 320], metavar=('H', 'W'),
                        help='inference LR size (default: 180 320, a 720p output at x4)')
    parser.add_argument('--steps', type=int, default=20, help='most timed steps per configuration (default: 20)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed steps after the first (default: 2)')
    parser.add_argument('--config-budget', type=float, default=10., help='seconds of timed steps per configuration')
    parser.add_argument('--budget', type=float, default=300., help='no configuration starts after this many seconds')
    parser.add_argument('--compile-reserve', type=float, default=120.,
                        help='a compiled configuration starts only with this many seconds of --budget left '
                             '(compiling takes long)')
    parser.add_argument('--compile-mode', default=None,
                        help="torch.compile mode (default: 'default'; with --dry-run the 'eager' backend); "
                             "'backend:NAME' compiles with that backend instead")
    parser.add_argument('--only', nargs='+', default=None, metavar='TEXT',
                        help="measure only the configurations whose name (e.g. 'srconvnet bf16-channels-last "
                             "compiled', 'edsr fp32') contains one of these")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.device = 'cpu'
        args.batch, args.patch, args.infer_size = min(args.batch, 2), min(args.patch, 16), [24, 32]
        args.steps, args.warmup, args.compile_reserve = min(args.steps, 2), 0, 0
        args.compile_mode = args.compile_mode or 'backend:eager'
    args.compile_mode = args.compile_mode or 'default'
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: torch sees no CUDA device (use --dry-run to check the script on the '
                     'CPU)')
    os.makedirs(args.out, exist_ok=True)
    result = {'args': vars(args), 'machine': machine_info(device), 'results': []}
    print(describe_machine(result['machine']), flush=True)
    start = time.perf_counter()
    configs = [c for c in plan(args.dry_run) if args.only is None or any(t in _name(c) for t in args.only)]
    if not configs:
        parser.error(f'--only {" ".join(args.only)}: no configuration matches')
    paths = []
    for config in configs:
        row = dict(config, name=_name(config))
        left = args.budget - (time.perf_counter() - start)
        if left <= (args.compile_reserve if config['compile'] else 0):
            row.update(status='skipped', error=f'{max(left, 0):.0f} s of the --budget of {args.budget:g} s left')
        else:
            try:
                row.update(measure(config, args, device))
            except Exception as e:  # recorded; the next configuration runs
                row.update(status='failed', error=f'{e.__class__.__name__}: {e}'.strip(),
                           traceback=traceback.format_exc(limit=4))
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
        result['results'].append(row)
        speed = (f'{row["iters_per_s"]:.2f} it/s' if 'iters_per_s' in row else
                 f'{row["ms_per_frame"]:.1f} ms/frame' if 'ms_per_frame' in row else row.get('error', ''))
        print(f'{_name(config)}: {row["status"]} {speed}', flush=True)
        paths = write(result, args.out)
    print('wrote ' + ', '.join(paths))
    return result


if __name__ == '__main__':
    main()
