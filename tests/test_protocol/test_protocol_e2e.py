"""End to end: a miniature DIV2K and benchmark tree in the official layouts, made from real photographs → the
shipped preparation scripts → the real x2/x3/x4 train option files for 2 iterations on the CPU → the real test option
files on the checkpoints they wrote.

Everything runs in one working directory, so the option files read ``datasets/...`` exactly as the scripts wrote it
(no path is overridden) and the test files find ``experiments/<train name>/models/net_g_latest.pth`` by default.
The command lines override only GPU count, batch, iterations and the network size; the patch sizes (256, 255 at x3)
stay the protocol's.
"""
import os
import os.path as osp
import re
import subprocess

import cv2
import lmdb
import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from helpers import plugin_env, python_cmd
from srconvnet_plugin.data.data_preparation import bicubic_lr, read_meta_info_keys, subimage_boxes

pytestmark = pytest.mark.slow

SCALES = (2, 3, 4)
SCRIPTS = REPO_ROOT / 'scripts' / 'data_preparation'
OVERRIDES = [
    'num_gpu=0',  # GPU count: the CPU
    'datasets:train:num_worker_per_gpu=1',  # loader processes per GPU (8 per GPU are for a server)
    'datasets:train:batch_size_per_gpu=2',  # batch
    'train:total_iter=2',  # iterations
]
# network size, for time only: the authors' 64-channel, 8-block net takes about a minute per 256-pixel iteration
# at batch 2 on 2 shared cores; this one a fraction of a second (shapes and pipeline are the same)
TINY_NET = ['network_g:num_feat=16', 'network_g:num_block=1', 'network_g:num_heads=4', 'network_g:num_kernels=4']


def _photos():
    from skimage import data
    astronaut, camera, hubble = data.astronaut(), data.camera(), data.hubble_deep_field()
    chelsea, coffee, rocket, ihc = data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()
    # DIV2K_train_HR.zip extracts to DIV2K_train_HR/0001.png ...; sizes that need mod-crop (512, 572, 650) and not
    div2k = [astronaut, ihc, hubble[:540, :600], hubble[300:, 350:], camera]
    # the SR benchmark archive: <name>/HR/<image>.png (B100 ships as BSDS100 there); camera is grey
    bench = {
        'Set5': {'baby': chelsea[:150, 100:300], 'bird': coffee[50:200, 50:250], 'butterfly': rocket[100:260, 200:400]},
        'Set14': {'barbara': astronaut[200:380, 100:300], 'man': camera[100:260, 100:300]},
        'BSDS100': {'3096': hubble[:150, :200], '8023': ihc[100:250, 100:300]},
        'Urban100': {'img_001': rocket[200:400, 350:600], 'img_002': coffee[200:380, 300:550]},
        'Manga109': {'AisazuNihaIrarenai': chelsea[150:300, 200:450], 'AkkeraKanjinchou': astronaut[:160, 300:500]},
    }
    return div2k, bench


def _write(path, rgb):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(str(path), rgb[..., ::-1] if rgb.ndim == 3 else rgb)


def _run_parallel(commands, cwd, timeout=300):
    """Run the commands together (they write to different folders) and check that every one succeeded."""
    procs = [subprocess.Popen(python_cmd(*args), cwd=cwd, env=plugin_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for args in commands]
    for args, proc in zip(commands, procs):
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f'{args[:3]} failed:\n{out[-4000:]}'


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    """The raw archives' layout, then the two preparation scripts run as a user runs them."""
    root = tmp_path_factory.mktemp('protocol')
    div2k, bench = _photos()
    for i, img in enumerate(div2k, 1):
        _write(root / 'raw' / 'DIV2K' / 'DIV2K_train_HR' / f'{i:04d}.png', img)
    for name, images in bench.items():
        for stem, img in images.items():
            _write(root / 'raw' / 'benchmark' / name / 'HR' / f'{stem}.png', img)
    _run_parallel([
        [SCRIPTS / 'prepare_div2k.py', '--input', 'raw/DIV2K/DIV2K_train_HR', '--output', 'datasets/DIV2K',
         '--n-workers', '2'],
        [SCRIPTS / 'prepare_benchmarks.py', '--input', 'raw/benchmark', '--output', 'datasets', '--n-workers', '2'],
    ], root)
    return root


def _lmdb_get(path, key):
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        buf = txn.get(key.encode('ascii'))
    assert buf is not None, f'{key} missing from {path}'
    return cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)


def test_prepared_div2k_is_basicsr_sub_images_of_matlab_bicubic(work):
    div = work / 'datasets' / 'DIV2K'
    raw = work / 'raw' / 'DIV2K' / 'DIV2K_train_HR'
    hr_lmdb = div / 'DIV2K_train_HR_sub.lmdb'
    keys = read_meta_info_keys(hr_lmdb)
    # mod-crop to 12 then 480/240 sub-images: 512 -> 504 (2 x 2), 540x600 (2 x 2), 572x650 -> 564x648 (2 x 2)
    expected = [f'{i:04d}_s{j:03d}' for i in range(1, 6) for j in range(1, 5)]
    assert keys == expected
    for s in SCALES:
        lr_lmdb = div / f'DIV2K_train_LR_bicubic_X{s}_sub.lmdb'
        assert read_meta_info_keys(lr_lmdb) == keys  # GT and LQ keys must be identical
        meta = (lr_lmdb / 'meta_info.txt').read_text().splitlines()
        assert meta[0] == f'0001_s001.png ({480 // s},{480 // s},3) 1'

    # the records: HR cut at BasicSR's positions; LR = MATLAB bicubic of the whole mod-cropped image, cut there / s
    hr_full = cv2.imread(str(raw / '0004.png'))[:564, :648]
    boxes = subimage_boxes(564, 648, 480, 240)
    assert boxes == [(0, 0), (0, 168), (84, 0), (84, 168)]
    top, left = boxes[3]
    np.testing.assert_array_equal(_lmdb_get(hr_lmdb, '0004_s004'), hr_full[top:top + 480, left:left + 480])
    for s in SCALES:
        lr_full = bicubic_lr(hr_full, s)
        got = _lmdb_get(div / f'DIV2K_train_LR_bicubic_X{s}_sub.lmdb', '0004_s004')
        np.testing.assert_array_equal(got, lr_full[top // s:(top + 480) // s, left // s:(left + 480) // s])
    # the grey photo is stored as 3 equal channels (what basicsr's imfrombytes decodes it to anyway)
    grey = _lmdb_get(hr_lmdb, '0005_s001')
    assert grey.shape == (480, 480, 3) and (grey[..., 0] == grey[..., 2]).all()


def test_prepared_benchmarks_are_gtmod12_and_matlab_bicubic(work):
    names = {'Set5': 3, 'Set14': 2, 'B100': 2, 'Urban100': 2, 'Manga109': 2}
    for name, count in names.items():
        gt_dir = work / 'datasets' / name / 'GTmod12'
        files = sorted(os.listdir(gt_dir))
        assert len(files) == count
        for f in files:
            raw = cv2.imread(str(work / 'raw' / 'benchmark' / ('BSDS100' if name == 'B100' else name) / 'HR' / f))
            gt = cv2.imread(str(gt_dir / f), cv2.IMREAD_UNCHANGED)
            h, w = raw.shape[0] // 12 * 12, raw.shape[1] // 12 * 12
            np.testing.assert_array_equal(gt, raw[:h, :w])
            for s in SCALES:
                lr = cv2.imread(str(work / 'datasets' / name / f'LRbicx{s}' / f), cv2.IMREAD_UNCHANGED)
                np.testing.assert_array_equal(lr, bicubic_lr(gt, s))


def _metric_lines(log_text, dataset):
    """{metric: value} of the last 'Validation <dataset>' block of a basicsr log."""
    blocks = re.findall(rf'Validation {dataset}\n((?:\t # \w+: [\d.]+.*\n)+)', log_text)
    assert blocks, f'no validation of {dataset} in the log'
    return {m: float(v) for m, v in re.findall(r'# (\w+): ([\d.]+)', blocks[-1])}


def _y_psnr(sr_bgr, gt_bgr, border):
    """PSNR on BT.601 Y (MATLAB rgb2ycbcr) of two 8-bit images, ``border`` pixels cropped: written out, not basicsr."""

    def y(img):
        img = img.astype(np.float64)
        return 16. + (65.481 * img[..., 2] + 128.553 * img[..., 1] + 24.966 * img[..., 0]) / 255.

    a, b = y(sr_bgr)[border:-border, border:-border], y(gt_bgr)[border:-border, border:-border]
    return 10. * np.log10(255. ** 2 / np.mean((a - b) ** 2))


def test_train_then_test_with_the_protocol_files(work):
    train_opts = [REPO_ROOT / 'options' / 'train' / 'SRConvNet' / f'train_SRConvNet_x{s}.yml' for s in SCALES]
    test_opts = [REPO_ROOT / 'options' / 'test' / 'SRConvNet' / f'test_SRConvNet_x{s}.yml' for s in SCALES]
    _run_parallel([['-m', 'srconvnet_plugin.train', '-opt', opt, '--force_yml', *OVERRIDES, *TINY_NET]
                   for opt in train_opts], work)
    for s in SCALES:
        exp = work / 'experiments' / f'train_SRConvNet_x{s}'
        params = torch.load(exp / 'models' / 'net_g_latest.pth', weights_only=True)['params']
        assert params['upsampling.0.weight'].shape[0] == 16 * (4 if s == 4 else s * s)
        log = next(exp.glob('train_*.log')).read_text()
        # the run used the protocol's patch (255 at x3: 256 would give a 255-pixel SR against a 256-pixel GT)
        assert re.search(rf'\n\s+gt_size: {255 if s == 3 else 256}\n', log)
        assert re.search(r'\n\s+total_iter: 2\n', log) and re.search(r'\n\s+batch_size_per_gpu: 2\n', log)
        metrics = _metric_lines(log, 'Set5')  # validation on Set5 during training
        assert set(metrics) == {'psnr', 'ssim'} and 10 < metrics['psnr'] < 50 and 0 < metrics['ssim'] <= 1

    _run_parallel([['-m', 'srconvnet_plugin.test', '-opt', opt, '--force_yml', 'num_gpu=0', *TINY_NET]
                   for opt in test_opts], work)
    for s in SCALES:
        res = work / 'results' / f'test_SRConvNet_x{s}'
        log = next(res.glob('test_*.log')).read_text()
        for name in ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109'):
            gt_dir = work / 'datasets' / name / 'GTmod12'
            psnrs = []
            for f in sorted(os.listdir(gt_dir)):
                gt = cv2.imread(str(gt_dir / f))
                sr = cv2.imread(str(res / 'visualization' / name / f'{f[:-4]}_test_SRConvNet_x{s}.png'))
                assert sr is not None and sr.shape == gt.shape, f'{name}/{f} x{s}'
                psnrs.append(_y_psnr(sr, gt, s))
            # the logged PSNR is the per-image mean on Y with border = scale, of the saved 8-bit SR images
            assert _metric_lines(log, name)['psnr'] == pytest.approx(np.mean(psnrs), abs=2e-4)
