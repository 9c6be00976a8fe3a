"""The main job: train, validate and test a reduced SRConvNet in minutes on photographs that scikit-image ships.

Usage::

    python -m srconvnet_plugin.demo [--scale 2] [--iters 400] [--out demo_output]

Every step goes through the real system: LR images by BasicSR's MATLAB-style bicubic ``imresize``, a training LMDB
made with ``basicsr.utils.lmdb_util``, training and validation (Y-PSNR/SSIM) through this plugin's train entry point
(BasicSR's train pipeline with the package's ``demo_options/train_SRConvNet_demo_x2.yml``), then BasicSR's test
pipeline on the saved ``net_g``. The final table compares the saved 8-bit SRConvNet outputs with bicubic upsampling
by BasicSR's ``calculate_psnr``/``calculate_ssim`` (Y channel, border = scale). Each run writes into a new numbered
folder under ``--out``, so an earlier run is never touched.
"""
import argparse
import csv
import io
import os
import re
import subprocess
import sys
import time
from importlib import resources
from os import path as osp

import srconvnet_plugin

srconvnet_plugin.require_toolbox('srconvnet-demo', __name__)  # before anything imports basicsr

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from tqdm import tqdm  # noqa: E402

from srconvnet.atomic_write import atomic_write
from srconvnet_plugin.data.data_preparation import bicubic_lr, bicubic_resize, lmdb_map_size, mod_crop
from srconvnet_plugin.utils.options import load_options

#: the folder that holds this ``srconvnet_plugin``: the stages run in subprocesses import the same package
PACKAGE_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: the demo's option file, package data (installed with the package, read through importlib.resources)
DEMO_OPTIONS = resources.files('srconvnet_plugin') / 'demo_options' / 'train_SRConvNet_demo_x2.yml'
# textured photographs for training; the validation images are other photographs (no smooth ones: retina,
# colorwheel give meaninglessly high PSNR)
TRAIN_IMAGES = ('astronaut', 'coffee', 'rocket', 'hubble_deep_field', 'camera', 'gravel')
VAL_IMAGES = {'chelsea': None, 'immunohistochemistry': (128, 128, 256, 256), 'coins': None}


def _photo(name):
    """A scikit-image sample photograph as an 8-bit BGR array (grey ones replicated to three channels)."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3][..., ::-1])


def _write_png(path, img):
    """``img`` as a new PNG file at ``path`` (atomically; the run folder is new, so nothing is replaced)."""
    ok, png = cv2.imencode('.png', img)
    if not ok:
        raise ValueError(f'{path}: OpenCV cannot encode a {img.dtype} {img.shape} image as PNG')
    atomic_write(path, png, overwrite=False)


def _make_lmdb(paths, shapes, lmdb_path):
    """An LMDB (with meta_info.txt) of the PNG files ``paths`` (images of ``shapes``) by BasicSR's own maker; the map
    size is computed from the shapes (``data_preparation.lmdb_map_size``), not guessed."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs

    map_size = lmdb_map_size(shapes)
    make_lmdb_from_imgs(osp.dirname(paths[0]), lmdb_path, [osp.basename(p) for p in paths],
                        [osp.splitext(osp.basename(p))[0] for p in paths], map_size=map_size)


def build_data(data_dir, scale):
    """Write the demo's data: training HR/LR as LMDBs, validation HR/LR as PNG folders. Returns the val names."""
    folders = {'train_HR': [], f'train_LRx{scale}': []}
    shapes = {folder: [] for folder in folders}
    for name in tqdm(TRAIN_IMAGES, desc='training images', unit='img'):
        hr = mod_crop(_photo(name), scale)
        for folder, img in (('train_HR', hr), (f'train_LRx{scale}', bicubic_lr(hr, scale))):
            os.makedirs(osp.join(data_dir, 'train', folder), exist_ok=True)
            path = osp.join(data_dir, 'train', folder, f'{name}.png')
            _write_png(path, img)
            folders[folder].append(path)
            shapes[folder].append(img.shape)
    for folder, paths in folders.items():
        _make_lmdb(paths, shapes[folder], osp.join(data_dir, f'{folder}.lmdb'))

    for name, box in tqdm(VAL_IMAGES.items(), desc='validation images', unit='img'):
        hr = _photo(name)
        if box is not None:
            y, x, h, w = box
            hr = hr[y:y + h, x:x + w]
        hr = mod_crop(hr, scale)
        for folder, img in (('HR', hr), (f'LRx{scale}', bicubic_lr(hr, scale))):
            os.makedirs(osp.join(data_dir, 'val', folder), exist_ok=True)
            _write_png(osp.join(data_dir, 'val', folder, f'{name}.png'), img)
    return list(VAL_IMAGES)


def make_options(scale, iters):
    """The demo's train and test options as dicts (the demo option file with scale, iterations and paths set)."""
    with resources.as_file(DEMO_OPTIONS) as path:
        train_opt = load_options(path)
    train_opt['name'] = f'SRConvNet_demo_x{scale}'
    train_opt['scale'] = scale
    train_opt['network_g']['upscale'] = scale
    train_opt['datasets']['train']['dataroot_lq'] = f'data/train_LRx{scale}.lmdb'
    train_opt['datasets']['train']['gt_size'] = 64 if scale != 3 else 66
    train_opt['datasets']['val']['dataroot_lq'] = f'data/val/LRx{scale}'
    train_opt['train']['total_iter'] = iters
    train_opt['train']['scheduler']['milestones'] = [max(1, int(iters * 0.75))]
    for metric in train_opt['val']['metrics'].values():
        metric['crop_border'] = scale
    train_opt['val']['val_freq'] = max(1, iters // 8)
    train_opt['logger']['save_checkpoint_freq'] = iters

    test_opt = {
        'name': f'SRConvNet_demo_x{scale}_test',
        'model_type': 'SRModel',
        'scale': scale,
        'num_gpu': train_opt['num_gpu'],
        'manual_seed': 0,
        'datasets': {'test_1': {**train_opt['datasets']['val'], 'name': 'demo_val'}},
        'network_g': dict(train_opt['network_g']),
        'path': {'pretrain_network_g': f'experiments/{train_opt["name"]}/models/net_g_latest.pth',
                 'strict_load_g': True, 'param_key_g': 'params'},
        'val': {'save_img': True, 'suffix': None, 'metrics': train_opt['val']['metrics']},
    }
    return _plain(train_opt), _plain(test_opt)


def _plain(obj):
    """Ordered dicts to plain dicts, so that ``yaml.safe_dump`` writes them."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def run_stage(args, run_dir, log_path, desc, total=None):
    """Run a plugin entry point in ``run_dir``, logging to ``log_path`` and showing a progress bar over iterations."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (PACKAGE_ROOT, os.environ.get('PYTHONPATH')) if p))
    pattern = re.compile(r'\[epoch:.*?iter:\s*([\d,]+)')  # BasicSR's MessageLogger: [epoch:  0, iter:     10, ...
    with open(log_path, 'w') as log, tqdm(total=total, desc=desc, unit='iter' if total else ' line') as pbar:
        proc = subprocess.Popen([sys.executable, '-m', *args], cwd=run_dir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            match = pattern.search(line) if total else None
            if match:
                pbar.update(int(match.group(1).replace(',', '')) - pbar.n)
            elif not total:
                pbar.update(1)
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f'{desc} failed (exit code {code}); see {log_path}')


def evaluate(run_dir, val_names, scale, test_name):
    """Y-PSNR/SSIM of bicubic and of the saved SRConvNet outputs against HR, per image; returns a list of rows."""
    from basicsr.metrics import calculate_psnr, calculate_ssim

    rows = []
    for name in val_names:
        hr = cv2.imread(osp.join(run_dir, 'data', 'val', 'HR', f'{name}.png'))
        lr = cv2.imread(osp.join(run_dir, 'data', 'val', f'LRx{scale}', f'{name}.png'))
        sr_path = osp.join(run_dir, 'results', test_name, 'visualization', 'demo_val', f'{name}_{test_name}.png')
        sr = cv2.imread(sr_path)
        if sr is None:
            raise FileNotFoundError(f'test pipeline output not found: {sr_path}')
        bic = bicubic_resize(lr, scale)
        row = {'image': name}
        for label, img in (('bicubic', bic), ('srconvnet', sr)):
            row[f'{label}_psnr'] = calculate_psnr(img, hr, crop_border=scale, test_y_channel=True)
            row[f'{label}_ssim'] = calculate_ssim(img, hr, crop_border=scale, test_y_channel=True)
        rows.append(row)
    mean = {'image': 'mean'}
    for key in rows[0]:
        if key != 'image':
            mean[key] = float(np.mean([r[key] for r in rows]))
    return rows + [mean]


def format_table(rows):
    lines = ['| image | bicubic PSNR | bicubic SSIM | SRConvNet PSNR | SRConvNet SSIM | gain (dB) |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['image']} | {r['bicubic_psnr']:.2f} | {r['bicubic_ssim']:.4f} | {r['srconvnet_psnr']:.2f} "
                     f"| {r['srconvnet_ssim']:.4f} | {r['srconvnet_psnr'] - r['bicubic_psnr']:+.2f} |")
    return '\n'.join(lines)


def save_montage(run_dir, val_names, scale, test_name, path, crop=96):
    """Centre crops of bicubic | SRConvNet | HR for each validation image, as one PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(val_names), 3, figsize=(9, 3 * len(val_names)), squeeze=False)
    for i, name in enumerate(val_names):
        hr = cv2.imread(osp.join(run_dir, 'data', 'val', 'HR', f'{name}.png'))
        lr = cv2.imread(osp.join(run_dir, 'data', 'val', f'LRx{scale}', f'{name}.png'))
        sr = cv2.imread(osp.join(run_dir, 'results', test_name, 'visualization', 'demo_val', f'{name}_{test_name}.png'))
        y, x = (hr.shape[0] - crop) // 2, (hr.shape[1] - crop) // 2
        for j, (title, img) in enumerate((('bicubic', bicubic_resize(lr, scale)), ('SRConvNet', sr), ('HR', hr))):
            axes[i, j].imshow(img[y:y + crop, x:x + crop, ::-1], interpolation='nearest')
            axes[i, j].set_title(f'{name}: {title}', fontsize=9)
            axes[i, j].axis('off')
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format='png'), overwrite=False)
    plt.close(fig)


def validation_curve(run_dir, exp_name):
    """(iteration, PSNR) pairs that BasicSR's validation wrote to the tensorboard log."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(osp.join(run_dir, 'tb_logger', exp_name))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars('metrics/demo_val/psnr')]


def save_curve(curve, bicubic_psnr, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([c[0] for c in curve], [c[1] for c in curve], 'o-', label='SRConvNet (validation)')
    ax.axhline(bicubic_psnr, color='gray', linestyle='--', label='bicubic')
    ax.set_xlabel('iteration')
    ax.set_ylabel('Y-PSNR (dB)')
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format='png'), overwrite=False)
    plt.close(fig)


def new_run_dir(out):
    """A new numbered folder under ``out`` (run_001, run_002, ...): earlier runs are never touched."""
    os.makedirs(out, exist_ok=True)
    for i in range(1, 10000):
        run_dir = osp.join(out, f'run_{i:03d}')
        try:
            os.mkdir(run_dir)
        except FileExistsError:
            continue
        return osp.abspath(run_dir)
    raise RuntimeError(f'{out} holds 9999 runs already; choose another --out')


def run_demo(scale=2, iters=400, out='demo_output'):
    """Run the whole demo; returns ``(run_dir, rows)``."""
    if scale not in (2, 3, 4):
        raise ValueError(f'--scale must be 2, 3 or 4, got {scale}')
    if iters < 1:
        raise ValueError(f'--iters must be positive, got {iters}')
    start = time.time()
    run_dir = new_run_dir(out)
    print(f'demo: run folder {run_dir}')
    val_names = build_data(osp.join(run_dir, 'data'), scale)
    train_opt, test_opt = make_options(scale, iters)
    net = train_opt['network_g']
    print(f"demo: reduced SRConvNet x{scale}: num_feat {net['num_feat']}, {net['num_block']} blocks, "
          f"{net['num_heads']} heads, {net['num_kernels']} kernels; HR patch {train_opt['datasets']['train']['gt_size']}, "
          f"batch {train_opt['datasets']['train']['batch_size_per_gpu']}, {iters} iterations")
    for fname, opt in (('train.yml', train_opt), ('test.yml', test_opt)):
        atomic_write(osp.join(run_dir, fname), yaml.safe_dump(opt, sort_keys=False).encode('utf-8'), overwrite=False)
    run_stage(['srconvnet_plugin.train', '-opt', 'train.yml'], run_dir, osp.join(run_dir, 'train.log'),
              'training', total=iters)
    run_stage(['srconvnet_plugin.test', '-opt', 'test.yml'], run_dir, osp.join(run_dir, 'test.log'), 'testing')

    rows = evaluate(run_dir, val_names, scale, test_opt['name'])
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(osp.join(run_dir, 'metrics.csv'), table.getvalue().encode('utf-8'), overwrite=False)
    save_montage(run_dir, val_names, scale, test_opt['name'], osp.join(run_dir, 'montage.png'))
    # BasicSR validates once more after the last iteration, logged at total_iter + 1: keep the in-training points
    curve = [(step, psnr) for step, psnr in validation_curve(run_dir, train_opt['name']) if step <= iters]
    save_curve(curve, rows[-1]['bicubic_psnr'],
               osp.join(run_dir, 'val_psnr.png'))

    print(f'\nY-PSNR (dB) / SSIM on the validation photographs, x{scale}, border {scale}:\n')
    print(format_table(rows))
    gain = rows[-1]['srconvnet_psnr'] - rows[-1]['bicubic_psnr']
    print(f'\nSRConvNet vs bicubic: {gain:+.2f} dB mean Y-PSNR after {iters} iterations '
          f'({time.time() - start:.0f} s in all).')
    print(f'Outputs in {run_dir}:')
    print(f"  SR images     results/{test_opt['name']}/visualization/demo_val/")
    print(f"  checkpoint    experiments/{train_opt['name']}/models/net_g_latest.pth")
    print('  metrics       metrics.csv;  crops  montage.png;  validation curve  val_psnr.png')
    print('  logs          train.log, test.log, experiments/, tb_logger/')
    return run_dir, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scale', type=int, default=2, choices=(2, 3, 4), help='upscaling factor (default 2)')
    parser.add_argument('--iters', type=int, default=400, help='training iterations (default 400)')
    parser.add_argument('--out', default='demo_output', help='folder for the runs (default ./demo_output)')
    args = parser.parse_args(argv)
    run_demo(args.scale, args.iters, args.out)


if __name__ == '__main__':
    main()
