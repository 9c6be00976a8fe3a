"""The two real-world models in process, on the CPU, from the shipped option files (full-size SRConvNet, U-Net
discriminator, VGG19 perceptual loss with random weights) and real batches of ``RealESRGANDataset``.

The references are BasicSR's own ``RealESRNetModel`` / ``RealESRGANModel`` steps, run with only their ``.cuda()``
calls replaced (the plugin's ``_OnDevice``): without the training keys the plugin's models take exactly their steps.
"""
import pytest
import torch

from srconvnet.checkpoints import load_weights_only
from srconvnet_plugin.patches.compat import apply_pipeline_shims

apply_pipeline_shims()
from basicsr.models.realesrgan_model import RealESRGANModel  # noqa: E402
from basicsr.models.realesrnet_model import RealESRNetModel  # noqa: E402
from realworld_helpers import build, dataset_batch, feed, model_options, prepare_workdir  # noqa: E402
from srconvnet_plugin.models.realworld_model import (RealSRConvNetGANModel, RealSRConvNetModel,  # noqa: E402
                                                     _OnDevice)

class BasicsrStage1(_OnDevice, RealESRNetModel):
    _basicsr_model = RealESRNetModel


class BasicsrStage2(_OnDevice, RealESRGANModel):
    _basicsr_model = RealESRGANModel


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, hr_photos, vgg19_weights):
    return prepare_workdir(tmp_path_factory.mktemp('realworld_models'), hr_photos, vgg19_weights)


def params(net, buffers=True):
    """The state (with ``buffers``, e.g. the spectral norms' power-iteration vectors) or only the parameters."""
    items = net.state_dict().items() if buffers else net.named_parameters()
    return {k: v.detach().clone() for k, v in items}


def assert_same(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.parametrize('stage,ours,theirs,nets', [
    (1, RealSRConvNetModel, BasicsrStage1, ('net_g', 'net_g_ema')),
    (2, RealSRConvNetGANModel, BasicsrStage2, ('net_g', 'net_g_ema', 'net_d')),
])
@pytest.mark.slow
def test_without_the_keys_a_step_is_basicsrs(workdir, monkeypatch, one_thread, stage, ours, theirs, nets):
    opt = model_options(workdir, monkeypatch, stage)
    a, b = build(ours, opt), build(theirs, opt)
    assert a.device.type == 'cpu' and a.usm_sharpener.kernel.device == a.device
    for it in (1, 2, 3):  # a pool of 4 pairs at batch 2: filled by 1 and 2, drawn from at 3
        data = dataset_batch(opt, it)
        for model in (a, b):
            feed(model, data, 10 + it)
        assert torch.equal(a.lq, b.lq) and torch.equal(a.gt, b.gt)
        assert a.lq.shape == (2, 3, 8, 8) and a.gt.shape == (2, 3, 32, 32)
        for model in (a, b):
            model.optimize_parameters(it)
        assert a.log_dict == b.log_dict
    for name in nets:
        assert_same(params(getattr(a, name)), params(getattr(b, name)))
    assert a.queue_lr.device == a.device and a.queue_lr.shape == (4, 3, 8, 8) and a.queue_ptr == 4
    if stage == 2:
        assert set(a.log_dict) == {'l_g_pix', 'l_g_percep', 'l_g_gan', 'l_d_real', 'out_d_real', 'l_d_fake',
                                   'out_d_fake'}


def test_degradations_are_reproducible_under_a_seed(workdir, monkeypatch, one_thread):
    opt = model_options(workdir, monkeypatch, 1)
    made = []
    for seed in (3, 3, 4):
        model = build(RealSRConvNetModel, opt)
        feed(model, dataset_batch(opt, seed), seed)
        made.append((model.lq, model.gt))
    assert torch.equal(made[0][0], made[1][0]) and torch.equal(made[0][1], made[1][1])
    assert not torch.equal(made[0][0], made[2][0])
    # the LQ images are degraded, not a plain downscaling of the GT: 8-bit values, different from an area resize
    lq = made[0][0]
    assert torch.equal(lq, (lq * 255).round() / 255)
    area = torch.nn.functional.interpolate(made[0][1], scale_factor=1 / 4, mode='area')
    assert (lq - area).abs().mean() > 1e-3


@pytest.mark.slow
def test_stage2_bf16_channels_last_clipping_and_accumulation(workdir, monkeypatch, one_thread):
    opt = model_options(workdir, monkeypatch, 2, force=['use_amp=true', 'amp_bf16=true', 'use_channels_last=true',
                                                  'train:grad_clip=true', 'datasets:train:accum_iter=2'])
    model = build(RealSRConvNetGANModel, opt)
    assert model.grad_scaler is None and model.grad_scaler_d is None
    d_weights = [p for p in model.net_d.parameters() if p.dim() == 4]
    assert d_weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in d_weights)
    dtypes = []
    model.net_d.conv0.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    start = {name: params(getattr(model, name), buffers=False) for name in ('net_g', 'net_g_ema', 'net_d')}
    feed(model, dataset_batch(opt, 1), 1)
    model.optimize_parameters(1)
    assert dtypes == [torch.bfloat16] * 3  # the GAN loss of G, then real and fake for D, under autocast
    for name, before in start.items():  # accumulated only
        assert_same(params(getattr(model, name), buffers=False), before)
    assert all(p.grad is not None for p in model.net_d.parameters())
    feed(model, dataset_batch(opt, 2), 2)
    model.optimize_parameters(2)
    for name, before in start.items():
        after = params(getattr(model, name), buffers=False)
        assert any(not torch.equal(after[k], before[k]) for k in before), name
        assert all(v.dtype != torch.bfloat16 for v in after.values())  # the weights stay float32
    assert all(p.grad is None for p in [*model.net_g.parameters(), *model.net_d.parameters()])
    assert all(torch.isfinite(torch.tensor(v)) for v in model.log_dict.values())


@pytest.mark.slow
def test_stage2_fp16_grad_scalers_of_both_networks_round_trip(workdir, monkeypatch, one_thread):
    """fp16 on the CPU (refused by the option checks, but torch has a CPU GradScaler): each optimizer's state in the
    .state file carries its network's GradScaler, and resume_training restores both."""
    opt = model_options(workdir, monkeypatch, 2, force=['use_amp=true', 'amp_bf16=true'])
    opt['amp_bf16'] = False  # (after the option checks)
    model = build(RealSRConvNetGANModel, opt)
    feed(model, dataset_batch(opt, 1), 1)
    model.optimize_parameters(1)
    model.grad_scaler.update(new_scale=512.)
    model.grad_scaler_d.update(new_scale=64.)
    saved = model.grad_scaler.state_dict(), model.grad_scaler_d.state_dict()
    model.save_training_state(0, 1)
    state = load_weights_only(f'{opt["path"]["training_states"]}/1.state')
    assert [o['grad_scaler']['scale'] for o in state['optimizers']] == [512., 64.]

    resumed = build(RealSRConvNetGANModel, opt, seed=1)
    resumed.resume_training(state)
    assert (resumed.grad_scaler.state_dict(), resumed.grad_scaler_d.state_dict()) == saved
    torch.testing.assert_close(resumed.optimizer_d.state_dict()['state'], model.optimizer_d.state_dict()['state'])
