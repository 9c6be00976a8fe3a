"""Time of one training step of SRConvNet against BasicSR's EDSR-baseline, in the same process, alternating.

Usage::

    PYTHONPATH=$PWD python scripts/benchmark_train.py                      # x2/x3/x4, batch 16 of 64x64 LR, CPU
    PYTHONPATH=$PWD python scripts/benchmark_train.py --batch 4 --patch 48 --modes fp32 bf16 channels-last
    PYTHONPATH=$PWD python scripts/benchmark_train.py --device cuda --modes fp32 bf16 fp16 --json train.json

One step is what ``model_type: SRModel`` does per iteration: forward, L1 loss against a ``patch * s`` ground truth,
backward, Adam step (the plugin's :class:`~srconvnet_plugin.models.precision_model.PrecisionSRModel` does the same
under the training keys). SRConvNet is the authors' default configuration, EDSR-baseline is
``EDSR(num_feat=64, num_block=16, res_scale=1)`` at the same scale (``srconvnet_plugin.measure.benchmark_helpers.build``). Every (network, mode)
of a scale is run in turn (A, B, C, ... A, B, C) after a warm-up, so load from other processes hits all alike; the
table gives the median step time of each, the ratio SRConvNet / EDSR-baseline of the medians, and each mode's
speed-up over fp32 for the same network. The modes (``--modes``) apply to both networks:

* ``fp32``: eager, contiguous;
* ``bf16`` / ``fp16``: forward and loss under ``torch.autocast`` (fp16 with a GradScaler; GPUs only), the way the
  training key ``use_amp`` (+ ``amp_bf16``) trains; SRConvNet's Fourier unit stays float32;
* ``channels-last`` / ``bf16-channels-last``: 4-D weights and batches channels-last (``use_channels_last``).

The header names the CPU model and the flags that decide which kernels torch can use (AVX2, AVX-512, AVX-512 bf16,
AMX), torch's version and thread count: machines differ.
"""
import argparse
import json
import statistics

import torch

from srconvnet.atomic_write import atomic_write
from srconvnet_plugin.measure.benchmark_helpers import (TRAIN_MODES, build, describe_machine, machine_info,
                                                         markdown_table, time_alternately, train_batch, train_step)

NETWORKS = ('srconvnet', 'edsr')
COLUMNS = ('scale', 'mode', 'SRConvNet step (ms)', 'EDSR-baseline step (ms)', 'ratio SRConvNet / EDSR',
           'SRConvNet vs its fp32', 'EDSR vs its fp32')


def measure(scale, args, device):
    """Step times of every (network, mode) at ``scale``: ``{'scale', 'times_s': {net: {mode: [...]}}, ...}``."""
    lq, gt = train_batch(args.batch, args.patch, scale)
    runs = {}
    for name in NETWORKS:
        for mode in args.modes:
            runs[(name, mode)] = train_step(build(name, scale), lq, gt, device, mode)
    times = time_alternately(runs, args.runs, args.warmup)
    medians = {key: statistics.median(t) for key, t in times.items()}
    row = {'scale': scale, 'batch': args.batch, 'patch': args.patch,
           'times_s': {name: {mode: times[(name, mode)] for mode in args.modes} for name in NETWORKS},
           'ratio': {mode: medians[('srconvnet', mode)] / medians[('edsr', mode)] for mode in args.modes}}
    if 'fp32' in args.modes:
        row['speedup_vs_fp32'] = {name: {mode: medians[(name, 'fp32')] / medians[(name, mode)] for mode in args.modes}
                                  for name in NETWORKS}
    return row


def markdown(rows, head=True):
    """The results as a Markdown table (``head=False``: the rows only)."""
    cells = []
    for row in rows:
        for mode, ratio in row['ratio'].items():
            med = {name: statistics.median(row['times_s'][name][mode]) * 1e3 for name in NETWORKS}
            speed = row.get('speedup_vs_fp32')
            up = [f'{speed[name][mode]:.2f}x' if speed else '-' for name in NETWORKS]
            cells.append((f'x{row["scale"]}', mode, f'{med["srconvnet"]:.0f}', f'{med["edsr"]:.0f}', f'{ratio:.2f}',
                          *up))
    return markdown_table(COLUMNS, cells, head) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default: cpu)')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], choices=[2, 3, 4])
    parser.add_argument('--batch', type=int, default=16, help='LR patches per step (default: 16)')
    parser.add_argument('--patch', type=int, default=64, help='LR patch size (default: 64)')
    parser.add_argument('--modes', nargs='+', default=['fp32', 'bf16', 'channels-last'], choices=list(TRAIN_MODES),
                        help='precision / memory-format modes, applied to both networks (default: fp32 bf16 '
                             'channels-last)')
    parser.add_argument('--runs', type=int, default=5, help='timed steps of each (network, mode) (default: 5)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps first (default: 1)')
    parser.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    parser.add_argument('--json', default=None, help='write the results to this JSON file too')
    args = parser.parse_args(argv)
    for key in ('batch', 'patch', 'runs'):
        if getattr(args, key) < 1:
            parser.error(f'--{key} must be at least 1, got {getattr(args, key)}')
    if args.warmup < 0:
        parser.error(f'--warmup must be 0 or more, got {args.warmup}')
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: CUDA is not available on this machine')
    if device.type == 'cpu' and any(TRAIN_MODES[mode][0] is torch.float16 for mode in args.modes):
        parser.error('fp16 modes are for GPUs (a GradScaler on CUDA); on the CPU use bf16')
    args.modes = list(dict.fromkeys(args.modes))
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine_info(device)
    print(describe_machine(info))
    print(f'# one training step (forward, L1, backward, Adam), batch {args.batch} of {args.patch}x{args.patch} LR, '
          f'median of {args.runs} alternating runs')
    print(markdown_table(COLUMNS, []))
    rows = []
    for scale in args.scales:
        rows.append(measure(scale, args, device))
        print(markdown(rows[-1:], head=False), end='', flush=True)
    if args.json:
        atomic_write(args.json, json.dumps({'args': vars(args), 'machine': info, 'results': rows}, indent=1).encode())
    return rows


if __name__ == '__main__':
    main()
