"""The training keys through the plugin's entry points: real ``python -m srconvnet_plugin.train`` (and torchrun)
subprocesses on tiny x4 LMDB sets (SRConvNet num_feat 16, one block), on the CPU; resumed with ``--auto_resume``."""
import re
import subprocess

import pytest
import torch

from helpers import REPO_ROOT, free_port, ok, plugin_env, python_cmd
from srconvnet.checkpoints import load_weights_only
from training_helpers import run_train, training_yaml

pytestmark = pytest.mark.slow

ITER = re.compile(r'\[epoch:\s*\d+, iter:\s*([\d,]+),')
PSNR = re.compile(r'# psnr: ([\d.]+)\tBest')
ALL_KEYS = dict(top=['use_amp: true', 'amp_bf16: true', 'use_channels_last: true'],
                train=['grad_clip: true', 'grad_clip_max_norm: 0.5'], dataset=['accum_iter: 2'])


def iters(text):
    return [int(i.replace(',', '')) for i in ITER.findall(text)]


def test_bf16_channels_last_grad_clip_accum_trains_and_resumes(tmp_path, tiny_sr_sets):
    name = 'keys'
    (tmp_path / 'train.yml').write_text(training_yaml(tiny_sr_sets, name, total_iter=4, save_freq=2, val_freq=2,
                                                      tb_logger=False, **ALL_KEYS))
    proc = ok(run_train(tmp_path))
    first = proc.stdout + proc.stderr
    assert 'mixed precision: bf16 autocast (no GradScaler; Fourier unit float32)' in first
    assert ('training: channels-last on, torch.compile off, gradient clipping max norm 0.5, accum_iter 2'
            in first)
    assert 'Model [PrecisionSRModel] is created.' in first
    assert iters(first) == [1, 2, 3, 4]
    psnrs = [float(p) for p in PSNR.findall(first)]
    assert len(psnrs) == 3 and all(20 < p < 50 for p in psnrs)  # at 2, 4 and the end, under bf16 autocast
    states = tmp_path / 'experiments' / name / 'training_states'
    state = load_weights_only(states / '4.state')
    assert state['iter'] == 4 and 'grad_scaler' not in state['optimizers'][0]  # bf16 needs no GradScaler

    proc = ok(run_train(tmp_path, '--auto_resume', '--force_yml', 'train:total_iter=6'))
    second = proc.stdout + proc.stderr
    assert 'Resuming training from epoch: 1, iter: 4.' in second
    assert 'mixed precision: bf16 autocast' in second
    assert iters(second) == [5, 6]
    assert load_weights_only(states / '6.state')['iter'] == 6
    net = load_weights_only(tmp_path / 'experiments' / name / 'models' / 'net_g_6.pth')['params']
    assert all(torch.isfinite(v).all() and v.dtype == torch.float32 for v in net.values())


def test_without_the_keys_the_log_says_fp32(tmp_path, tiny_sr_sets):
    (tmp_path / 'train.yml').write_text(training_yaml(tiny_sr_sets, 'fp32', total_iter=2, save_freq=2, val_freq=100,
                                                      tb_logger=False))
    proc = ok(run_train(tmp_path))
    text = proc.stdout + proc.stderr
    assert 'precision: fp32' in text and 'mixed precision' not in text
    assert 'training: channels-last off, torch.compile off, gradient clipping off, accum_iter 1' in text


def test_two_rank_gloo_ddp_with_bf16_and_accumulation(tmp_path, tiny_sr_sets):
    name = 'keys_ddp'
    (tmp_path / 'ddp.yml').write_text(training_yaml(tiny_sr_sets, name, total_iter=4, save_freq=4, val_freq=4,
                                                    tb_logger=False, **ALL_KEYS))
    env = plugin_env()
    env.update(PORT=str(free_port()), PYTHON=python_cmd()[0])
    proc = subprocess.run(['bash', str(REPO_ROOT / 'scripts' / 'dist_train.sh'), '2', 'ddp.yml'], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    ok(proc)
    exp = tmp_path / 'experiments' / name
    [log] = exp.glob(f'train_{name}_*.log')
    text = log.read_text()
    assert 'World size (gpu number): 2' in text and 'Network: DistributedDataParallel - SRConvNet' in text
    assert 'mixed precision: bf16 autocast' in text and 'accum_iter 2' in text
    assert iters(text) == [1, 2, 3, 4] and len(PSNR.findall(text)) == 2
    assert load_weights_only(exp / 'training_states' / '4.state')['iter'] == 4


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_fp16_grad_scaler_state_survives_auto_resume_on_cuda(tmp_path, tiny_sr_sets):
    name = 'fp16'
    text = training_yaml(tiny_sr_sets, name, total_iter=4, save_freq=2, val_freq=2, tb_logger=False,
                         top=['use_amp: true'], train=['grad_clip: true'])
    (tmp_path / 'train.yml').write_text(text.replace('num_gpu: 0', 'num_gpu: 1'))
    proc = ok(run_train(tmp_path))
    assert 'mixed precision: fp16 autocast with GradScaler' in proc.stdout + proc.stderr
    states = tmp_path / 'experiments' / name / 'training_states'
    scaler = load_weights_only(states / '4.state')['optimizers'][0]['grad_scaler']
    assert scaler['scale'] > 0 and set(scaler) >= {'scale', 'growth_factor', 'backoff_factor', 'growth_interval'}
    proc = ok(run_train(tmp_path, '--auto_resume', '--force_yml', 'train:total_iter=6'))
    second = proc.stdout + proc.stderr
    assert f'GradScaler: resumed at scale {scaler["scale"]:g}' in second
    assert iters(second) == [5, 6]
    assert 'grad_scaler' in load_weights_only(states / '6.state')['optimizers'][0]
