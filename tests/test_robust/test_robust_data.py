"""Data faults in ``PairedImageDataset`` (basicsr's own dataset, patched by ``data_faults`` through ``compat``): a
named error, or a documented conversion, never a silent wrong sample.

| fault | what happens |
| corrupt bytes in an LMDB record, a truncated PNG, a missing LMDB key | error naming the record/file and dataset |
| image smaller than ``gt_size``, LQ not GT/scale (at run time) | error naming the GT and LQ files |
| grey, RGBA, 16-bit images | converted as OpenCV's ``IMREAD_COLOR`` does: grey -> 3 equal channels, alpha dropped, |
|                            | 16 -> 8 bit (value / 257, rounded); tested value by value below |
"""
import shutil
import subprocess
from pathlib import Path

import cv2
import lmdb
import numpy as np
import pytest

from helpers import photo_crop, plugin_env, python_cmd
from srconvnet_plugin.utils.checks import OptionCheckError, check_options
from srconvnet_plugin.patches.compat import apply_pipeline_shims
from srconvnet_plugin.data.data_faults import DataFaultError
from robust_helpers import make_test_yaml

apply_pipeline_shims()
from basicsr.data import build_dataset  # noqa: E402


def dataset(gt, lq, backend='disk', phase='val', gt_size=48):
    return build_dataset({'name': 'faulty', 'type': 'PairedImageDataset', 'dataroot_gt': str(gt),
                          'dataroot_lq': str(lq), 'io_backend': {'type': backend}, 'phase': phase, 'scale': 4,
                          'gt_size': gt_size, 'use_hflip': False, 'use_rot': False})


def index_of(ds, key):
    [i] = [i for i, p in enumerate(ds.paths) if Path(p['gt_path']).stem == key]
    return i


@pytest.fixture
def lq_lmdb_copy(tmp_path, tiny_sr_sets):
    path = tmp_path / 'LQx4.lmdb'
    shutil.copytree(tiny_sr_sets['train'].lq_lmdb, path)
    return path


def test_corrupt_lmdb_record_is_named(tiny_sr_sets, lq_lmdb_copy):
    env = lmdb.open(str(lq_lmdb_copy), map_size=1 << 26)
    with env.begin(write=True) as txn:
        record = bytearray(txn.get(b'chelsea'))
        record[100:300] = np.random.default_rng(0).integers(0, 256, 200, dtype=np.uint8).tobytes()
        txn.put(b'chelsea', bytes(record))
    env.close()
    ds = dataset(tiny_sr_sets['train'].gt_lmdb, lq_lmdb_copy, backend='lmdb', phase='train')
    assert ds[index_of(ds, 'astronaut')]['lq'].shape == (3, 12, 12)  # the other records still read
    with pytest.raises(DataFaultError, match=rf"datasets: faulty: lq record 'chelsea' of the LMDB {lq_lmdb_copy}/?: "
                       rf'cannot be decoded \({len(record)} bytes\): the data is corrupt, truncated or not an image'):
        ds[index_of(ds, 'chelsea')]


def test_missing_lmdb_record_is_named_by_the_check_and_at_run_time(tmp_path, tiny_sr_sets, lq_lmdb_copy):
    env = lmdb.open(str(lq_lmdb_copy), map_size=1 << 26)
    with env.begin(write=True) as txn:
        txn.delete(b'coffee')
    env.close()
    train = tiny_sr_sets['train']
    opt = {'scale': 4, 'model_type': 'SRModel', 'datasets': {'train': {
        'name': 'faulty', 'type': 'PairedImageDataset', 'phase': 'train', 'dataroot_gt': str(train.gt_lmdb),
        'dataroot_lq': str(lq_lmdb_copy), 'io_backend': {'type': 'lmdb'}, 'gt_size': 48}}}
    with pytest.raises(OptionCheckError, match=rf'datasets: train: dataroot_lq: {lq_lmdb_copy} meta_info.txt lists '
                       'keys the LMDB does not hold: coffee'):
        check_options(opt, 'x.yml')
    ds = dataset(train.gt_lmdb, lq_lmdb_copy, backend='lmdb', phase='train')
    with pytest.raises(DataFaultError, match=r"lq record 'coffee' of the LMDB .*: no such key in the LMDB"):
        ds[index_of(ds, 'coffee')]


@pytest.mark.slow
def test_truncated_png_is_named(tmp_path, tiny_sr_sets):
    val = tiny_sr_sets['val']
    lq = tmp_path / 'LQ'
    shutil.copytree(val.lq, lq)
    png = lq / 'hubble_deep_field.png'
    png.write_bytes(png.read_bytes()[:png.stat().st_size // 2])
    ds = dataset(val.gt, lq)
    with pytest.raises(DataFaultError, match=rf'datasets: faulty: lq image {png}: cannot be decoded'):
        ds[index_of(ds, 'hubble_deep_field')]
    # through the test pipeline: exit 1 with the same message, not a traceback about NoneType
    work = tmp_path / 'work'
    work.mkdir()
    net_g = tmp_path / 'net_g.pth'
    import torch

    from srconvnet.archs.srconvnet_arch import SRConvNet
    torch.save({'params': SRConvNet(num_feat=16, num_block=1, num_heads=4, num_kernels=4).state_dict()}, net_g)
    (work / 'test.yml').write_text(make_test_yaml(tiny_sr_sets, 'trunc', net_g).replace(str(val.lq), str(lq)))
    proc = subprocess.run(python_cmd('-m', 'srconvnet_plugin.test', '-opt', 'test.yml'), cwd=work, env=plugin_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f'srconvnet-test: error: datasets: tiny_val: lq image {png}: cannot be decoded' in proc.stderr


def test_too_small_and_mis_scaled_pairs_name_the_files_at_run_time(tmp_path, tiny_sr_sets):
    """(The option check refuses both before training; this is the run-time net behind it.)"""
    val = tiny_sr_sets['val']
    ds = dataset(val.gt, val.lq, phase='train', gt_size=128)
    with pytest.raises(DataFaultError, match=rf'datasets: faulty: GT {val.gt}/\w+\.png, LQ {val.lq}/\w+\.png: '
                       r'ValueError: LQ \(24, 24\) is smaller than patch size \(32, 32\)'):
        ds[0]
    lq = tmp_path / 'LQ'
    shutil.copytree(val.lq, lq)
    img = cv2.imread(str(lq / 'hubble_deep_field.png'))
    cv2.imwrite(str(lq / 'hubble_deep_field.png'), img[:20, :20])
    ds = dataset(val.gt, lq, phase='train')
    with pytest.raises(DataFaultError, match=r'hubble_deep_field\.png: ValueError: Scale mismatches\. GT \(96, 96\) '
                       r'is not 4x multiplication of LQ \(20, 20\)\.'):
        ds[index_of(ds, 'hubble_deep_field')]


def test_grey_rgba_and_16_bit_images_are_converted_as_documented(tmp_path, tiny_sr_sets):
    rgb = photo_crop('rocket', 96)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    rgb16 = rgb.astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 257, rgb.shape).astype(np.uint16)
    gt, lq = tmp_path / 'GT', tmp_path / 'LQ'
    gt.mkdir()
    lq.mkdir()
    cases = {'grey': (grey, np.stack([grey] * 3, -1)),
             'rgba': (np.dstack([bgr, np.full(grey.shape, 9, np.uint8)]), rgb),
             'sixteen': (cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR), np.round(rgb16 / 257.))}
    for name, (stored, _) in cases.items():
        assert cv2.imwrite(str(gt / f'{name}.png'), stored)
        cv2.imwrite(str(lq / f'{name}.png'), cv2.resize(bgr, (24, 24), interpolation=cv2.INTER_AREA))
    ds = dataset(gt, lq)
    for name, (_, expected_rgb) in cases.items():
        got = ds[index_of(ds, name)]['gt'].numpy().transpose(1, 2, 0) * 255.  # RGB, [0, 1] -> [0, 255]
        assert got.shape == (96, 96, 3), name
        assert np.abs(got - expected_rgb).max() <= 1.0 + 1e-3, name  # 16 bit: within one 8-bit step
        assert np.abs(got - expected_rgb).mean() < 0.5, name
