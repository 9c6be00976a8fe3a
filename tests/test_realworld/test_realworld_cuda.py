"""The real-world paths on a CUDA GPU (skipped elsewhere; ``scripts/gpu_check.sh`` runs them with ``pytest -m cuda``):
BasicSR's own real-world models (unmodified, with their ``.cuda()``) as the references of the plugin's steps, the
training keys in stage 2 (fp16 with two GradScalers, bf16, channels-last, clipping), and both stages through the entry
point with ``--auto_resume`` restoring the GradScalers of both networks."""
import pytest
import torch

from helpers import ok
from realworld_helpers import build, dataset_batch, feed, iters, model_options, prepare_workdir, train
from srconvnet.checkpoints import load_weights_only
from srconvnet_plugin.patches.compat import apply_pipeline_shims

apply_pipeline_shims()
from basicsr.models.realesrgan_model import RealESRGANModel  # noqa: E402
from basicsr.models.realesrnet_model import RealESRNetModel  # noqa: E402
from srconvnet_plugin.models.realworld_model import RealSRConvNetGANModel, RealSRConvNetModel  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')]


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, hr_photos, vgg19_weights):
    return prepare_workdir(tmp_path_factory.mktemp('realworld_cuda'), hr_photos, vgg19_weights)


@pytest.mark.parametrize('stage,ours,theirs', [(1, RealSRConvNetModel, RealESRNetModel),
                                               (2, RealSRConvNetGANModel, RealESRGANModel)])
def test_steps_on_cuda_follow_basicsrs_own_models(workdir, monkeypatch, stage, ours, theirs):
    opt = model_options(workdir, monkeypatch, stage, force=['num_gpu=1'])
    a, b = build(ours, opt), build(theirs, opt)
    for it in (1, 2, 3):
        data = dataset_batch(opt, it)
        for model in (a, b):
            feed(model, data, 10 + it)
        assert a.lq.is_cuda and torch.equal(a.lq, b.lq) and torch.equal(a.gt, b.gt)
        for model in (a, b):
            model.optimize_parameters(it)
    assert a.queue_lr.is_cuda and a.queue_ptr == 4
    for name in ('net_g', 'net_g_ema') + (('net_d', ) if stage == 2 else ()):
        mine, basicsr = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        for key in mine:  # (cuDNN's backward sums in no fixed order)
            torch.testing.assert_close(mine[key], basicsr[key], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('amp', [['use_amp=true'], ['use_amp=true', 'amp_bf16=true']])
def test_stage2_with_autocast_channels_last_and_clipping_on_cuda(workdir, monkeypatch, amp):
    opt = model_options(workdir, monkeypatch, 2, force=['num_gpu=1', *amp, 'use_channels_last=true',
                                                        'train:grad_clip=true'])
    model = build(RealSRConvNetGANModel, opt)
    fp16 = len(amp) == 1
    assert (model.grad_scaler is not None, model.grad_scaler_d is not None) == (fp16, fp16)
    for it in (1, 2, 3):
        feed(model, dataset_batch(opt, it), it)
        model.optimize_parameters(it)
        assert all(torch.isfinite(torch.tensor(v)) for v in model.log_dict.values()), model.log_dict
    for net in (model.net_g, model.net_g_ema, model.net_d):
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in net.parameters())
    if fp16:
        assert [o['grad_scaler']['scale'] > 0 for o in (model.optimizer_g.state_dict(),
                                                          model.optimizer_d.state_dict())] == [True, True]


def test_both_stages_through_the_entry_point_with_fp16_and_auto_resume(tmp_path, hr_photos, vgg19_weights):
    work = prepare_workdir(tmp_path, hr_photos, vgg19_weights)
    ok(train(work, 4, 1, force=['num_gpu=1']))
    first = ok(train(work, 4, 2, force=['num_gpu=1', 'use_amp=true']))
    assert 'mixed precision: fp16 autocast with GradScaler' in first.stdout + first.stderr
    state = load_weights_only(work / 'experiments' / 'train_RealSRConvNet_x4_stage2' / 'training_states' / '2.state')
    scales = [o['grad_scaler']['scale'] for o in state['optimizers']]
    assert len(scales) == 2 and all(s > 0 for s in scales)
    second = ok(train(work, 4, 2, '--auto_resume', force=['num_gpu=1', 'use_amp=true', 'train:total_iter=3']))
    text = second.stdout + second.stderr
    assert f'GradScaler: resumed at scale {scales[0]:g}' in text
    assert f'GradScaler of network_d: resumed at scale {scales[1]:g}' in text
    assert iters(text) == [3]
