"""The option files are the paper's protocol: every number the paper's setting fixes is pinned here, so an edit that
drifts from it fails. The paths are pinned to what the data-preparation scripts write."""
import os.path as osp

import pytest
import torch

from conftest import REPO_ROOT
from srconvnet_plugin.data.data_preparation import BENCHMARKS, benchmark_output_paths, div2k_output_paths
from srconvnet_plugin.utils.options import load_options

SCALES = (2, 3, 4)
# HR patch: 256 (LR 128 at x2, 64 at x4); at x3 256 is not divisible by 3 and the authors' run crashes: 255 (LR 85)
GT_SIZE = {2: 256, 3: 255, 4: 256}
AUTHORS_NET = dict(type='SRConvNet', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=8, num_heads=8, num_kernels=16,
                   img_range=255.)
SAMPLES_PER_EPOCH = 800 * 40


def load_train_opt(scale):
    return load_options(REPO_ROOT / 'options' / 'train' / 'SRConvNet' / f'train_SRConvNet_x{scale}.yml')


def load_test_opt(scale):
    return load_options(REPO_ROOT / 'options' / 'test' / 'SRConvNet' / f'test_SRConvNet_x{scale}.yml')


def check_network(opt, scale):
    assert opt['scale'] == scale
    assert dict(opt['network_g']) == dict(AUTHORS_NET, upscale=scale)


def check_metrics(val, scale):
    """PSNR and SSIM on the Y channel (BasicSR's test_y_channel, on the 8-bit SR image), border = scale."""
    metrics = val['metrics']
    assert metrics['psnr'] == {'type': 'calculate_psnr', 'crop_border': scale, 'test_y_channel': True}
    assert metrics['ssim'] == {'type': 'calculate_ssim', 'crop_border': scale, 'test_y_channel': True}


@pytest.mark.parametrize('scale', SCALES)
def test_train_option_file_is_the_paper_protocol(scale):
    opt = load_train_opt(scale)
    assert opt['model_type'] == 'SRModel'
    check_network(opt, scale)

    train_set = opt['datasets']['train']
    assert train_set['type'] == 'PairedImageDataset' and train_set['io_backend'] == {'type': 'lmdb'}
    # patch sizes and augmentation (hflip; "rot" = vflip + transpose)
    assert train_set['gt_size'] == GT_SIZE[scale] and GT_SIZE[scale] % scale == 0
    assert train_set['gt_size'] // scale == {2: 128, 3: 85, 4: 64}[scale]
    assert train_set['use_hflip'] is True and train_set['use_rot'] is True
    assert 'color' not in train_set and 'mean' not in train_set and 'std' not in train_set  # RGB, no normalisation
    # global batch 128 on 2 GPUs
    assert opt['num_gpu'] == 2 and train_set['batch_size_per_gpu'] == 64
    assert train_set['dataset_enlarge_ratio'] == 1  # about 32,000 DIV2K sub-images per epoch, as 800 x 40
    assert opt['num_gpu'] * train_set['batch_size_per_gpu'] == 128

    train = opt['train']
    # 1000 epochs of 800 x 40 samples at batch 128 = 250,000 iterations
    assert train['total_iter'] == 250000 == 1000 * SAMPLES_PER_EPOCH // 128
    assert train.get('warmup_iter', -1) == -1
    assert train.get('ema_decay', 0) == 0
    assert train['optim_g'] == {'type': 'Adam', 'lr': 2e-4, 'weight_decay': 0, 'betas': [0.9, 0.999], 'eps': 1e-8}
    assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': [125000, 200000, 225000, 237500],
                                  'gamma': 0.5}
    # L1 as the authors take it on 0..255 pixels: BasicSR's [0, 1] images need x255 for the same gradients
    assert train['pixel_opt'] == {'type': 'L1Loss', 'loss_weight': 255.0, 'reduction': 'mean'}
    assert set(train) == {'ema_decay', 'optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'pixel_opt'}

    # data: exactly what prepare_div2k.py and prepare_benchmarks.py write (relative to the working directory)
    div2k = div2k_output_paths(osp.join('datasets', 'DIV2K'), [scale])
    assert (train_set['dataroot_gt'], train_set['dataroot_lq']) == (div2k[0], div2k[scale])
    val_set = opt['datasets']['val']
    set5 = benchmark_output_paths(osp.join('datasets', 'Set5'), [scale])
    assert (val_set['name'], val_set['dataroot_gt'], val_set['dataroot_lq']) == ('Set5', set5[0], set5[scale])
    assert val_set['io_backend'] == {'type': 'disk'}
    check_metrics(opt['val'], scale)
    assert opt['path']['pretrain_network_g'] is None and opt['path']['resume_state'] is None


@pytest.mark.parametrize('scale', SCALES)
def test_test_option_file_is_the_paper_protocol(scale):
    opt = load_test_opt(scale)
    assert opt['model_type'] == 'SRModel'
    check_network(opt, scale)
    # the same network as the training file, and its last weights
    train = load_train_opt(scale)
    assert opt['network_g'] == train['network_g']
    assert opt['path']['pretrain_network_g'] == f"experiments/{train['name']}/models/net_g_latest.pth"
    assert opt['path']['param_key_g'] == 'params' and opt['path']['strict_load_g'] is True

    sets = [opt['datasets'][k] for k in sorted(opt['datasets'])]
    assert [s['name'] for s in sets] == list(BENCHMARKS) == ['Set5', 'Set14', 'B100', 'Urban100', 'Manga109']
    for s in sets:
        paths = benchmark_output_paths(osp.join('datasets', s['name']), [scale])
        assert (s['type'], s['dataroot_gt'], s['dataroot_lq']) == ('PairedImageDataset', paths[0], paths[scale])
        assert s['io_backend'] == {'type': 'disk'} and 'color' not in s
    check_metrics(opt['val'], scale)


def test_scales_share_everything_but_the_scale():
    """The three train files (and the three test files) differ only where the scale enters."""

    def normalise(node, scale):
        if isinstance(node, dict):
            return {k: 's' if k in ('scale', 'upscale', 'crop_border', 'gt_size') else normalise(v, scale)
                    for k, v in node.items()}
        if isinstance(node, list):
            return [normalise(v, scale) for v in node]
        if isinstance(node, str):
            return node.replace(f'x{scale}', 'x{s}').replace(f'X{scale}', 'X{s}')
        return node

    for load in (load_train_opt, load_test_opt):
        variants = [normalise(load(s), s) for s in SCALES]
        assert variants[0] == variants[1] == variants[2], f'{load.__name__}: x2/x3/x4 differ beyond the scale'


def test_every_option_file_is_checked():
    # the paper's protocol files (the demo's reduced config is package data, checked by the demo tests) and the
    # real-world recipe's (pinned in tests/test_realworld/test_realworld_options.py)
    files = sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / 'options').rglob('*SRConvNet*.yml'))
    assert files == sorted([f'options/test/SRConvNet/test_SRConvNet_x{s}.yml' for s in SCALES] +
                           [f'options/train/SRConvNet/train_SRConvNet_x{s}.yml' for s in SCALES] +
                           [f'options/test/RealSRConvNet/test_RealSRConvNet_x{s}_real.yml' for s in (2, 4)] +
                           [f'options/train/RealSRConvNet/train_RealSRConvNet_x{s}_stage{n}.yml'
                            for s in (2, 4) for n in (1, 2)])


def test_loss_weight_255_takes_the_authors_adam_steps():
    """The authors' net sees 0..255 and takes L1 there; ours sees [0, 1] (img_range scales inside), so its output is
    theirs / 255. With the train file's loss and optimizer, one Adam step matches theirs; with loss_weight 1 it does
    not (Adam's eps = 1e-8 is comparable to some gradients once they are 255 times smaller)."""
    from basicsr.losses import build_loss
    from helpers import photo_crop
    from srconvnet.archs.srconvnet_arch import SRConvNet

    opt = load_train_opt(2)['train']
    gt = torch.from_numpy(photo_crop('astronaut', 48)).permute(2, 0, 1)[None].float() / 255.
    lq = torch.nn.functional.avg_pool2d(gt, 2)
    torch.manual_seed(0)
    nets = [SRConvNet(num_feat=16, num_block=1, num_heads=4, num_kernels=4, upscale=2) for _ in range(3)]
    for net in nets[1:]:
        net.load_state_dict(nets[0].state_dict())

    def adam_step(net, loss_fn):
        optim_opt = {k: v for k, v in opt['optim_g'].items() if k != 'type'}
        optimizer = torch.optim.Adam(net.parameters(), **optim_opt)
        loss_fn(net(lq)).backward()
        optimizer.step()
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    authors = adam_step(nets[0], lambda sr: torch.nn.functional.l1_loss(255. * sr, 255. * gt))
    ours = adam_step(nets[1], lambda sr: build_loss(dict(opt['pixel_opt']))(sr, gt))
    unweighted = adam_step(nets[2], lambda sr: build_loss(dict(opt['pixel_opt'], loss_weight=1.0))(sr, gt))
    torch.testing.assert_close(ours, authors, rtol=0, atol=1e-9)
    # without the weight some parameters move by a fraction of the authors' step (measured: 1.8e-4 of lr 2e-4 off)
    assert (unweighted - authors).abs().max() > 0.25 * opt['optim_g']['lr']
