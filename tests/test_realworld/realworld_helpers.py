"""The real-world tests' shared pieces: the shipped option files (options/train/RealSRConvNet/) run with only paths and
lengths changed (``--force_yml``), in process or through ``python -m srconvnet_plugin.train``."""
import copy
import re
import shutil
import subprocess
import sys

import torch

import basicsr.utils.options as basicsr_options
from basicsr.data import build_dataset
from basicsr.utils import set_random_seed
from helpers import REPO_ROOT, place_vgg19, plugin_env, python_cmd
from srconvnet_plugin.data.data_preparation import write_meta_info

ITER = re.compile(r'\[epoch:\s*\d+, iter:\s*([\d,]+),')
#: the crop of the dataset's 400x400 GT that the in-process tests degrade
GT_CROP = 96


def train_option_file(scale, stage):
    return REPO_ROOT / 'options' / 'train' / 'RealSRConvNet' / f'train_RealSRConvNet_x{scale}_stage{stage}.yml'


def real_photos_option_file(scale):
    return REPO_ROOT / 'options' / 'test' / 'RealSRConvNet' / f'test_RealSRConvNet_x{scale}_real.yml'


def lengths(total_iter=2, save_freq=2, gt_size=32, batch=2, queue=4):
    """``--force_yml`` entries that make the shipped training small: 32x32 GT crops, batch 2, a pool of 4 pairs, no
    data-loader processes, a few iterations, a log line per iteration, no TensorBoard."""
    return [f'train:total_iter={total_iter}', f'gt_size={gt_size}', f'datasets:train:gt_size={gt_size}',
            f'queue_size={queue}', f'datasets:train:batch_size_per_gpu={batch}', 'datasets:train:num_worker_per_gpu=0',
            f'logger:save_checkpoint_freq={save_freq}', 'logger:print_freq=1', 'logger:use_tb_logger=false']


def data_paths(workdir):
    """``--force_yml`` entries pointing the training set at the photos :func:`prepare_workdir` listed."""
    return [f'datasets:train:dataroot_gt={workdir / "hr"}', f'datasets:train:meta_info={workdir / "meta_info.txt"}']


def prepare_workdir(workdir, hr_photos, vgg19_weights=None):
    """``workdir/hr`` (a copy of the photos), ``workdir/meta_info.txt`` (written by the data preparation) and, if
    given, the VGG19 weights where BasicSR reads them."""
    shutil.copytree(hr_photos, workdir / 'hr')
    write_meta_info([workdir / 'hr'], workdir / 'hr', workdir / 'meta_info.txt', n_workers=1)
    if vgg19_weights is not None:
        place_vgg19(vgg19_weights, workdir)
    return workdir


def command(module, option_file, *args, force=()):
    return python_cmd('-m', module, '-opt', option_file, *args, *(['--force_yml', *force] if force else []))


def run(cmd, workdir, timeout=300, env=None):
    """Run ``cmd`` in ``workdir`` with this checkout on the path and one torch thread; the CompletedProcess."""
    return subprocess.run(cmd, cwd=workdir, env=env or plugin_env(), capture_output=True, text=True, timeout=timeout)


def train(workdir, scale, stage, *args, force=()):
    """``python -m srconvnet_plugin.train`` on the shipped file of ``scale`` / ``stage`` in ``workdir``, with the data
    paths, the small lengths and ``force`` (later entries win)."""
    force = [*data_paths(workdir), *lengths(), *force]
    return run(command('srconvnet_plugin.train', train_option_file(scale, stage), *args, force=force), workdir)


def iters(text):
    return [int(i.replace(',', '')) for i in ITER.findall(text)]


def parse_in_process(workdir, monkeypatch, option_file, force=()):
    """The option dict the entry point would build (basicsr's ``parse_options`` as the plugin patches it, checks
    included), in this process, with ``workdir`` as the working directory."""
    monkeypatch.chdir(workdir)
    argv = ['srconvnet-train', '-opt', str(option_file)] + (['--force_yml', *force] if force else [])
    monkeypatch.setattr(sys, 'argv', argv)
    opt, _ = basicsr_options.parse_options(str(workdir), is_train=True)
    return opt


def model_options(workdir, monkeypatch, stage, scale=4, force=()):
    """The parsed shipped file for a model built in process: test data and lengths, no pretrained weights, the model
    folders under ``workdir``."""
    opt = parse_in_process(workdir, monkeypatch, train_option_file(scale, stage),
                           [*data_paths(workdir), *lengths(), 'path:pretrain_network_g=~', *force])
    for key in ('models', 'training_states'):
        (workdir / opt['name'] / key).mkdir(parents=True, exist_ok=True)
        opt['path'][key] = str(workdir / opt['name'] / key)
    return opt


def dataset_batch(opt, seed):
    """A batch of 2 from the option file's RealESRGANDataset under ``seed``, the GT cropped to GT_CROP (the model
    crops gt_size from it; the degradations of a smaller image are faster)."""
    set_random_seed(seed)
    dataset = build_dataset(copy.deepcopy(opt['datasets']['train']))
    items = [dataset[i] for i in range(2)]
    data = {k: torch.stack([it[k] for it in items]) for k in ('gt', 'kernel1', 'kernel2', 'sinc_kernel')}
    data['gt'] = data['gt'][..., :GT_CROP, :GT_CROP].contiguous()
    return data


def build(cls, opt, seed=0):
    """``cls(opt)`` (a copy) with torch seeded: two builds start from the same weights."""
    torch.manual_seed(seed)
    return cls(copy.deepcopy(opt))


def feed(model, data, seed):
    """``model.feed_data(data)`` with every generator seeded: the same degradations for the same seed."""
    set_random_seed(seed)
    model.feed_data(data)
