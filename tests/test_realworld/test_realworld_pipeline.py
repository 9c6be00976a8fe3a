"""Both stages through the plugin's entry point on the CPU, from the shipped x4 option files with only paths and
lengths changed: stage 1 trains and saves, stage 2 starts from its weights and trains the discriminator with the
perceptual and GAN losses, ``--auto_resume`` restores every network, optimizer and scheduler, the shipped test option
file upscales real photos as it is, the stage-2 weights load in ``srconvnet-infer``, spandrel and the ONNX export,
and what cannot work is refused before anything is made. Full-size SRConvNet, 32x32 GT crops, batch 2."""
import subprocess
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from helpers import REPO_ROOT, TEXTURED_PHOTOS, free_port, ok, photo_crop, plugin_env, python_cmd
from realworld_helpers import (ITER, command, data_paths, iters, lengths, parse_in_process, prepare_workdir,
                               real_photos_option_file, run, train, train_option_file)
from srconvnet.checkpoints import load_weights_only

pytestmark = pytest.mark.slow

STAGE1, STAGE2 = 'train_RealSRConvNet_x4_stage1', 'train_RealSRConvNet_x4_stage2'
GAN_TERMS = ('l_g_pix', 'l_g_percep', 'l_g_gan', 'l_d_real', 'out_d_real', 'l_d_fake', 'out_d_fake')


@pytest.fixture(scope='module')
def runs(tmp_path_factory, hr_photos, vgg19_weights):
    """One working directory: stage 1 (2 iterations), then stage 2 from its weights (2 iterations)."""
    work = prepare_workdir(tmp_path_factory.mktemp('realworld_runs'), hr_photos, vgg19_weights)
    stage1 = ok(train(work, 4, 1))
    stage2 = ok(train(work, 4, 2))
    return SimpleNamespace(work=work, stage1=stage1.stdout + stage1.stderr, stage2=stage2.stdout + stage2.stderr)


def models(work, name):
    return work / 'experiments' / name / 'models'


def test_stage1_trains_on_degradations_made_on_the_fly_and_saves(runs):
    assert 'Model [RealSRConvNetModel] is created.' in runs.stage1 and 'precision: fp32' in runs.stage1
    assert iters(runs.stage1) == [1, 2] and runs.stage1.count('l_pix: ') == 2
    saved = load_weights_only(models(runs.work, STAGE1) / 'net_g_2.pth')
    assert set(saved) == {'params', 'params_ema'}  # EMA 0.999, as Real-ESRGAN
    assert all(torch.isfinite(v).all() for v in saved['params_ema'].values())
    state = load_weights_only(runs.work / 'experiments' / STAGE1 / 'training_states' / '2.state')
    assert state['iter'] == 2 and len(state['optimizers']) == 1


def test_stage2_starts_from_stage1_and_trains_the_discriminator(runs):
    assert (f'Loading SRConvNet model from experiments/{STAGE1}/models/net_g_latest.pth, with param key: '
            '[params_ema].') in runs.stage2
    assert 'Model [RealSRConvNetGANModel] is created.' in runs.stage2 and 'UNetDiscriminatorSN' in runs.stage2
    assert iters(runs.stage2) == [1, 2]
    lines = [line for line in runs.stage2.splitlines() if ITER.search(line)]
    assert len(lines) == 2 and all(f'{term}: ' in line for line in lines for term in GAN_TERMS)
    folder = models(runs.work, STAGE2)
    assert {p.name for p in folder.iterdir()} == {'net_g_2.pth', 'net_g_latest.pth', 'net_d_2.pth',
                                                 'net_d_latest.pth'}
    start = load_weights_only(models(runs.work, STAGE1) / 'net_g_latest.pth')['params_ema']
    trained = load_weights_only(folder / 'net_g_2.pth')['params']
    assert start.keys() == trained.keys() and any(not torch.equal(start[k], trained[k]) for k in start)
    state = load_weights_only(runs.work / 'experiments' / STAGE2 / 'training_states' / '2.state')
    assert len(state['optimizers']) == len(state['schedulers']) == 2  # generator and discriminator


def test_auto_resume_restores_both_networks_the_ema_both_optimizers_and_the_schedulers(runs, monkeypatch):
    """What --auto_resume restores, compared tensor by tensor with the files the run saved (basicsr's resume path in
    process: the plugin's load_resume_state, build_model, resume_training), then the resumed run itself."""
    import basicsr.train

    from srconvnet_plugin.patches.compat import apply_pipeline_shims
    apply_pipeline_shims()
    work, folder = runs.work, models(runs.work, STAGE2)
    opt = parse_in_process(work, monkeypatch, train_option_file(4, 2), [*data_paths(work), *lengths()])
    opt['auto_resume'] = True
    resume_state = basicsr.train.load_resume_state(opt)
    model = basicsr.train.build_model(opt)
    model.resume_training(resume_state)
    net_g, net_d = load_weights_only(folder / 'net_g_2.pth'), load_weights_only(folder / 'net_d_2.pth')
    state = load_weights_only(work / 'experiments' / STAGE2 / 'training_states' / '2.state')
    for net, saved in ((model.net_g, net_g['params']), (model.net_g_ema, net_g['params_ema']),
                       (model.net_d, net_d['params'])):
        restored = model.get_bare_model(net).state_dict()
        assert restored.keys() == saved.keys() and all(torch.equal(restored[k], saved[k]) for k in saved)
    assert any(k.endswith('weight_u') for k in net_d['params'])  # (the spectral norms' vectors too)
    for optimizer, saved in zip(model.optimizers, state['optimizers'], strict=True):
        restored = optimizer.state_dict()
        assert restored['param_groups'] == saved['param_groups'] and saved['state']
        torch.testing.assert_close(restored['state'], saved['state'], rtol=0, atol=0)
    assert [s.state_dict() for s in model.schedulers] == state['schedulers']

    resumed = ok(train(work, 4, 2, '--auto_resume', force=['train:total_iter=3']))
    text = resumed.stdout + resumed.stderr
    assert 'Resuming training from epoch: 0, iter: 2.' in text and iters(text) == [3]
    assert f'Loading UNetDiscriminatorSN model from {folder / "net_d_2.pth"}' in text


def photos(folder, names=TEXTURED_PHOTOS[4:], size=(40, 48)):
    """Real LR photos (no ground truth): ``size`` crops of two photographs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        crop = photo_crop(name, max(size))[:size[0], :size[1]]
        cv2.imwrite(str(folder / f'{name}.png'), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return sorted(folder.iterdir())


def test_the_shipped_test_file_upscales_real_photos_and_infer_agrees(runs, tmp_path):
    """options/test/RealSRConvNet/test_RealSRConvNet_x4_real.yml unchanged: datasets/real_photos under the working
    directory, stage 2's net_g_latest.pth (EMA); no metrics. srconvnet-infer on the same weights gives the same
    images (within one 8-bit level)."""
    work = runs.work
    inputs = photos(work / 'datasets' / 'real_photos')
    proc = ok(run(command('srconvnet_plugin.test', real_photos_option_file(4)), work))
    assert 'psnr' not in (proc.stdout + proc.stderr).lower()
    out = work / 'results' / 'test_RealSRConvNet_x4_real' / 'visualization' / 'real_photos'
    ok(run(python_cmd('-m', 'srconvnet.infer', '-i', inputs[0].parent, '-o', tmp_path / 'infer', '--weights',
                      models(work, STAGE2) / 'net_g_latest.pth', '--tile', '0'), work))
    for path in inputs:
        tested = cv2.imread(str(out / f'{path.stem}_test_RealSRConvNet_x4_real.png'))
        inferred = cv2.imread(str(next((tmp_path / 'infer').glob(f'{path.stem}*'))))
        assert tested.shape == inferred.shape == (160, 192, 3)
        assert np.abs(tested.astype(int) - inferred.astype(int)).max() <= 1


def test_stage2_weights_load_in_spandrel_and_export_to_onnx(runs, tmp_path):
    import onnxruntime as ort
    from spandrel import ModelLoader

    from srconvnet.archs.srconvnet_arch import SRConvNet
    from srconvnet.spandrel_support import install
    weights = models(runs.work, STAGE2) / 'net_g_latest.pth'
    net = SRConvNet(upscale=4).eval()
    net.load_state_dict(load_weights_only(weights)['params_ema'])
    lq = torch.from_numpy(photo_crop('coffee', 24).transpose(2, 0, 1).astype(np.float32) / 255)[None]
    with torch.inference_mode():
        expected = net(lq)
    install()
    model = ModelLoader().load_from_file(weights)
    assert model.architecture.id == 'SRConvNet' and model.scale == 4
    assert torch.equal(model(lq), expected.clamp(0, 1))
    ok(run(python_cmd('-m', 'srconvnet.export', '--weights', weights, tmp_path / 'real_x4.onnx'), tmp_path))
    session = ort.InferenceSession(str(tmp_path / 'real_x4.onnx'), providers=['CPUExecutionProvider'])
    got = session.run(None, {session.get_inputs()[0].name: lq.numpy()})[0]
    assert got.shape == (1, 3, 96, 96) and np.abs(got - expected.numpy()).max() < 1e-3


def test_missing_vgg_weights_and_stage1_weights_are_refused_before_anything_is_made(tmp_path, hr_photos):
    """No VGG19 file, no torch hub copy, no network (a proxy that refuses connections), no stage-1 run: stage 2 is
    refused in the option check, one line each, exit 2, no experiment folder."""
    work = prepare_workdir(tmp_path, hr_photos)
    env = plugin_env()
    env.update(TORCH_HOME=str(tmp_path / 'torch_home'), https_proxy=f'http://127.0.0.1:{free_port()}')
    env.update(HTTPS_PROXY=env['https_proxy'])
    env.pop('no_proxy', None), env.pop('NO_PROXY', None)
    proc = run(command('srconvnet_plugin.train', train_option_file(4, 2), force=[*data_paths(work), *lengths()]), work,
               env=env)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert lines[-3].startswith(f'srconvnet-train: error: {train_option_file(4, 2)}: 2 problem(s) in the options:')
    vgg = work / 'experiments' / 'pretrained_models' / 'vgg19-dcbb9e9d.pth'
    assert lines[-2] == (f'  path: pretrain_network_g: experiments/{STAGE1}/models/net_g_latest.pth does not exist; '
                         'stage 2 fine-tunes the weights of stage 1 (model_type: RealSRConvNetModel): train stage 1 '
                         'first, or point pretrain_network_g at its net_g_latest.pth')
    assert lines[-1].startswith(f'  train: perceptual_opt: vgg_type: vgg19: the VGG weights of the perceptual loss '
                                f'are not at {vgg} and cannot be downloaded here (')
    assert lines[-1].endswith('); download https://download.pytorch.org/models/vgg19-dcbb9e9d.pth elsewhere and '
                              'copy it to that path')
    assert not (work / 'experiments' / STAGE2).exists()


def test_stage2_with_ddp_on_two_gloo_ranks_bf16_and_accumulation(runs):
    """torchrun, 2 CPU processes (gloo): both networks DistributedDataParallel, bf16 autocast, accum_iter 2."""
    name = 'stage2_ddp'
    env = plugin_env()
    env.update(PORT=str(free_port()), PYTHON=python_cmd()[0])
    force = [*data_paths(runs.work), *lengths(), f'name={name}', 'use_amp=true', 'amp_bf16=true',
             'datasets:train:accum_iter=2']
    proc = subprocess.run(['bash', str(REPO_ROOT / 'scripts' / 'dist_train.sh'), '2', str(train_option_file(4, 2)),
                           '--force_yml', *force], cwd=runs.work, env=env, capture_output=True, text=True,
                          timeout=600)
    ok(proc)
    [log] = (runs.work / 'experiments' / name).glob(f'train_{name}_*.log')
    text = log.read_text()
    assert 'World size (gpu number): 2' in text and 'mixed precision: bf16 autocast' in text
    assert 'Network: DistributedDataParallel - SRConvNet' in text
    assert 'Network: DistributedDataParallel - UNetDiscriminatorSN' in text
    assert iters(text) == [1, 2] and all(f'{term}: ' in text for term in GAN_TERMS)
    assert load_weights_only(runs.work / 'experiments' / name / 'training_states' / '2.state')['iter'] == 2
