"""Reusable builders for test data: tiny paired GT/LQ sets made from scikit-image's bundled photographs.

The LQ images are made the way BasicSR's data preparation makes them (matlab-style bicubic ``imresize``), stored as
PNG folders and as LMDBs written by ``basicsr.utils.lmdb_util.make_lmdb_from_imgs`` (with ``meta_info.txt``), so the
toolbox's ``PairedImageDataset`` reads them with ``io_backend: disk`` or ``io_backend: lmdb``.
"""
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

import srconvnet_plugin  # noqa: F401  (torchvision alias before basicsr)
from basicsr.utils.lmdb_util import make_lmdb_from_imgs
from srconvnet_plugin.data.data_preparation import bicubic_lr

REPO_ROOT = Path(__file__).resolve().parents[1]
TEXTURED_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'hubble_deep_field', 'immunohistochemistry')


@dataclass
class PairedSet:
    """Where a built set lives: GT/LQ PNG folders and the matching LMDBs (identical keys, one per photo)."""
    gt: Path
    lq: Path
    gt_lmdb: Path
    lq_lmdb: Path
    names: tuple
    scale: int


def photo_crop(name, size):
    """A ``size`` x ``size`` RGB uint8 crop from the centre of the scikit-image photograph ``name``."""
    from skimage import data
    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    img = img[..., :3]
    h, w = img.shape[:2]
    if min(h, w) < size:
        raise ValueError(f'photo {name!r} is {h}x{w}, smaller than the requested crop {size}')
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(img[top:top + size, left:left + size])


def make_paired_set(root, names=TEXTURED_PHOTOS[:4], scale=4, gt_size=96, lmdb=True):
    """Build a paired set under ``root``: ``GT/<name>.png``, ``LQ/<name>.png`` (and ``GT.lmdb``, ``LQ.lmdb``).

    ``gt_size`` must be a multiple of ``scale``. Returns a :class:`PairedSet`.
    """
    if gt_size % scale:
        raise ValueError(f'gt_size {gt_size} is not a multiple of scale {scale}')
    root = Path(root)
    gt_dir, lq_dir = root / 'GT', root / f'LQx{scale}'
    gt_dir.mkdir(parents=True)
    lq_dir.mkdir(parents=True)
    for name in names:
        gt = photo_crop(name, gt_size)
        cv2.imwrite(str(gt_dir / f'{name}.png'), cv2.cvtColor(gt, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(lq_dir / f'{name}.png'), cv2.cvtColor(bicubic_lr(gt, scale), cv2.COLOR_RGB2BGR))
    gt_lmdb, lq_lmdb = root / 'GT.lmdb', root / f'LQx{scale}.lmdb'
    if lmdb:
        files = [f'{name}.png' for name in names]
        for folder, out in ((gt_dir, gt_lmdb), (lq_dir, lq_lmdb)):
            # pass map_size: basicsr's guess (10 x first image) can be too small (MDB_MAP_FULL)
            size = sum((folder / f).stat().st_size for f in files)
            make_lmdb_from_imgs(str(folder), str(out), files, list(names), map_size=16 * size + (1 << 20))
    return PairedSet(gt_dir, lq_dir, gt_lmdb, lq_lmdb, tuple(names), scale)


def plugin_env(threads=1):
    """Environment for subprocesses that must import this checkout's ``srconvnet_plugin`` (not an installed copy).

    ``threads`` caps torch's intra-op threads: tiny models on a shared 2-core machine run faster with one.
    """
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join([str(REPO_ROOT)] + [p for p in [env.get('PYTHONPATH')] if p])
    env['OMP_NUM_THREADS'] = str(threads)
    return env


def ok(proc):
    """``proc`` (a finished CompletedProcess, text) if it exited 0; else fail showing the ends of its output."""
    assert proc.returncode == 0, f'exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n' \
                                 f'{proc.stderr[-5000:]}'
    return proc


def python_cmd(*args):
    """``[sys.executable, *args]`` as strings."""
    return [sys.executable] + [str(a) for a in args]


def free_port():
    """A TCP port that was free a moment ago (for a torchrun master)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def make_hr_folder(folder, names=TEXTURED_PHOTOS[:4], size=128):
    """A folder of HR photographs for real-world training: ``<name>.png``, ``size`` x ``size`` centre crops."""
    folder = Path(folder)
    folder.mkdir(parents=True)
    for name in names:
        cv2.imwrite(str(folder / f'{name}.png'), cv2.cvtColor(photo_crop(name, size), cv2.COLOR_RGB2BGR))
    return folder


def write_random_vgg19(path):
    """torchvision's VGG19 with random weights, saved (atomically) where BasicSR's perceptual loss looks for the
    ImageNet weights: a real weight file of the right layout, not the trained one."""
    import torch
    import torchvision

    from srconvnet.atomic_write import atomic_save
    torch.manual_seed(0)
    atomic_save(torchvision.models.vgg19(weights=None).state_dict(), path, overwrite=False)
    return Path(path)


def place_vgg19(weights, workdir):
    """Put ``weights`` at ``<workdir>/experiments/pretrained_models/vgg19-dcbb9e9d.pth`` (BasicSR's path, relative to
    the working directory): a hard link to the one file when the filesystem allows it, else a copy."""
    import shutil
    target = Path(workdir) / 'experiments' / 'pretrained_models' / 'vgg19-dcbb9e9d.pth'
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(weights, target)
    except OSError:
        shutil.copyfile(weights, target)
    return target
