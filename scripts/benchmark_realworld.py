"""What an iteration of the real-world recipe costs (options/train/RealSRConvNet/, docs/realworld.md), and so how many
hours its 1,000,000 + 400,000 iterations take: stage 1 and stage 2 steps with the degradations made on the fly,
against the yardstick of the same network's plain L1 step on ready-made pairs of the same size, timed alternately in
one process (so the ratios survive a loaded machine).

    PYTHONPATH=$PWD python scripts/benchmark_realworld.py --device cuda --out DIR   # the recipe: batch 12, GT 256
    PYTHONPATH=$PWD python scripts/benchmark_realworld.py --dry-run                 # CPU, batch 2, GT 32, seconds

One iteration = ``feed_data`` (degradations, pair pool) + ``optimize_parameters`` of the plugin's models built from the
shipped x4 (or ``--scale 2``) option files, on batches of ``RealESRGANDataset`` made beforehand from scikit-image
photographs (the data loader's own work, decoding and kernel sampling, runs in its worker processes during training
and is not timed). Stage 2's perceptual loss runs on VGG19 weights with random values when no
``experiments/pretrained_models/vgg19-dcbb9e9d.pth`` is in the working directory (the time does not depend on them).
The projected hours are per device at this batch: Real-ESRGAN trains on 4 GPUs x 12, each GPU doing one such
iteration per step, so the run's wall time is about the projection and its GPU hours four times that.
"""
import argparse
import copy
import functools
import itertools
import json
import os
import os.path as osp
import statistics
import sys
import tempfile

import cv2
import torch

import srconvnet_plugin  # noqa: F401  (registers the models; torchvision alias before basicsr)
from srconvnet.atomic_write import atomic_save, atomic_write
from srconvnet_plugin.data.data_preparation import write_meta_info
from srconvnet_plugin.demo import TRAIN_IMAGES, _photo
from srconvnet_plugin.patches.compat import apply_pipeline_shims
from srconvnet_plugin.utils.options import load_options
from srconvnet_plugin.measure.benchmark_helpers import (describe_machine, machine_info, markdown_table, synchronize,
                                                         time_alternately)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
VGG = osp.join('experiments', 'pretrained_models', 'vgg19-dcbb9e9d.pth')


def option_dict(stage, scale, device, folder, batch, gt_size):
    """The shipped option file of ``stage`` as basicsr's ``parse_options`` would hand it to the model, with the
    photographs in ``folder`` as data, no pretrained weights, and ``batch`` / ``gt_size``."""
    name = f'train_RealSRConvNet_x{scale}_stage{stage}.yml'
    opt = load_options(osp.join(REPO, 'options', 'train', 'RealSRConvNet', name))
    opt.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False, gt_size=gt_size,
               num_gpu=1 if device.type == 'cuda' else 0, queue_size=max(batch, opt['queue_size'] // batch * batch))
    opt['path'].update(pretrain_network_g=None, models=osp.join(folder, 'models'),
                       training_states=osp.join(folder, 'states'))
    opt['datasets']['train'].update(phase='train', scale=scale, dataroot_gt=osp.join(folder, 'hr'), gt_size=gt_size,
                                    meta_info=osp.join(folder, 'meta_info.txt'), batch_size_per_gpu=batch)
    return opt


def batches(opt, batch, count=3):
    """``count`` batches of ``batch`` items of the option file's ``RealESRGANDataset`` (seeded)."""
    from basicsr.data import build_dataset
    from basicsr.utils import set_random_seed
    set_random_seed(0)
    dataset = build_dataset(copy.deepcopy(opt['datasets']['train']))
    made = []
    for b in range(count):
        items = [dataset[(b * batch + i) % len(dataset)] for i in range(batch)]
        made.append({k: torch.stack([it[k] for it in items]) for k in ('gt', 'kernel1', 'kernel2', 'sinc_kernel')})
    return made


def main(argv=None):
    parser = argparse.ArgumentParser(prog='benchmark_realworld.py', description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--scale', type=int, default=4, choices=[2, 4])
    parser.add_argument('--batch', type=int, default=12, help='per device (the recipe: 12)')
    parser.add_argument('--gt-size', type=int, default=256, help='the GT crop (the recipe: 256)')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations of each (after 2 warm-up ones)')
    parser.add_argument('--dry-run', action='store_true', help='CPU check: batch 2, GT 32, one warm-up and one timed '
                        'iteration')
    parser.add_argument('--out', help='also write benchmark_realworld.json and .md into this folder')
    args = parser.parse_args(argv)
    warmup = 2
    if args.dry_run:
        args.device, args.batch, args.gt_size, args.iters, warmup = 'cpu', 2, 32, 1, 1
    device = torch.device(args.device)
    apply_pipeline_shims()
    from basicsr.models import build_model
    from basicsr.utils import get_root_logger

    get_root_logger(log_level=40)  # (the models' info lines would drown the report)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix='benchmark_realworld.') as folder:
        os.makedirs(osp.join(folder, 'hr'))
        for name in TRAIN_IMAGES:
            cv2.imwrite(osp.join(folder, 'hr', f'{name}.png'), _photo(name))
        write_meta_info([osp.join(folder, 'hr')], osp.join(folder, 'hr'), osp.join(folder, 'meta_info.txt'), 1)
        if not osp.isfile(VGG):  # random VGG19 weights where BasicSR looks for them, in the temporary folder
            import torchvision
            os.chdir(folder)
            atomic_save(torchvision.models.vgg19(weights=None).state_dict(), VGG, overwrite=False)
        try:
            opts = {stage: option_dict(stage, args.scale, device, folder, args.batch, args.gt_size) for stage in (1, 2)}
            models = {f'stage {stage}': build_model(opt) for stage, opt in opts.items()}
            # the yardstick: stage 1's network, L1 and EMA on ready-made pairs, without the degradations
            models['plain L1 step (yardstick)'] = build_model(dict(opts[1], model_type='PrecisionSRModel'))
            data = batches(opts[1], args.batch)
        finally:
            os.chdir(cwd)
        lq_size = args.gt_size // args.scale
        pairs = [{'lq': torch.rand(args.batch, 3, lq_size, lq_size), 'gt': torch.rand(args.batch, 3, args.gt_size,
                                                                                      args.gt_size)}] * len(data)

        def iteration(name, model, counter):
            """One training iteration of ``model`` on the next batch (``counter``: its own iteration numbers)."""
            it = next(counter)
            model.feed_data((pairs if name.startswith('plain') else data)[it % len(data)])
            model.optimize_parameters(it)
            synchronize(device)

        # the three alternate, iteration by iteration
        times = time_alternately({name: functools.partial(iteration, name, model, itertools.count(1))
                                  for name, model in models.items()}, args.iters, warmup)
    info = machine_info(device)
    yardstick = statistics.median(times['plain L1 step (yardstick)'])
    rows = []
    for name, spent in times.items():
        seconds = statistics.median(spent)
        total = opts[int(name[-1])]['train']['total_iter'] if name.startswith('stage') else None
        rows.append({'step': name, 'seconds': seconds, 'ratio': seconds / yardstick, 'total_iter': total,
                     'hours': total * seconds / 3600 if total else None})
    command = 'python scripts/benchmark_realworld.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    lines = [describe_machine(info), f'# {command}',
             f'# x{args.scale}, batch {args.batch}, GT {args.gt_size}x{args.gt_size}, median of {args.iters} '
             'iterations each', '',
             markdown_table(('step', 's / iteration', 'x the plain L1 step', 'iterations in the option file',
                             'hours at this rate'),
                            [(row['step'], f'{row["seconds"]:.3f}', f'{row["ratio"]:.2f}', row['total_iter'] or '-',
                              f'{row["hours"]:.0f}' if row['hours'] is not None else '-') for row in rows])]
    report = '\n'.join(lines) + '\n'
    print(report, end='')
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        result = {'machine': info, 'command': command, 'scale': args.scale, 'batch': args.batch,
                  'gt_size': args.gt_size, 'iters': args.iters, 'rows': rows}
        atomic_write(osp.join(args.out, 'benchmark_realworld.json'), json.dumps(result, indent=1).encode())
        atomic_write(osp.join(args.out, 'benchmark_realworld.md'), report.encode())


if __name__ == '__main__':
    sys.exit(main())
