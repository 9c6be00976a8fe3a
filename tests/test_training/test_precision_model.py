"""PrecisionSRModel in process, on real tiny SRConvNets on the CPU: what each training key does to a step.

The references are computed by hand next to the model (plain fp32 forward, L1, backward on a copy of the network) or
come from BasicSR's own ``SRModel``; nothing of BasicSR or torch is mocked.
"""
import copy
import math

import pytest
import torch

from srconvnet.checkpoints import load_weights_only
from srconvnet_plugin.patches.compat import apply_pipeline_shims

apply_pipeline_shims()
from basicsr.models.sr_model import SRModel  # noqa: E402
from srconvnet_plugin.models.precision_model import PrecisionSRModel, TrainingSettings, compile_modes  # noqa: E402
from training_helpers import batch, build, make_opt  # noqa: E402



def params(net):
    return {k: v.detach().clone() for k, v in net.named_parameters()}


def fp32_grads(net, data):
    """Gradients of the mean L1 loss of ``net`` (a copy, fp32, eager) on ``data``."""
    net = copy.deepcopy(net).float()
    net.zero_grad()
    torch.nn.functional.l1_loss(net(data['lq']), data['gt']).backward()
    return {k: p.grad.clone() for k, p in net.named_parameters()}


def test_without_the_keys_a_step_is_basicsrs_sr_model_step_ema_included(tmp_path, one_thread):
    opt = make_opt(tmp_path, train={'ema_decay': 0.9})
    ours, theirs = build(PrecisionSRModel, opt), build(SRModel, opt)
    assert ours.settings == TrainingSettings()
    for it in (1, 2):
        for model in (ours, theirs):
            model.feed_data(batch(it))
            model.optimize_parameters(it)
    for net in ('net_g', 'net_g_ema'):
        a, b = params(getattr(ours, net)), params(getattr(theirs, net))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), net


def test_accum_iter_steps_every_n_batches_with_the_mean_gradient(tmp_path, one_thread):
    lr = 0.5
    model = build(PrecisionSRModel, make_opt(tmp_path, accum_iter=2), sgd_lr=lr)
    start = params(model.net_g)
    grads = [fp32_grads(model.net_g, batch(seed)) for seed in (1, 2)]
    model.feed_data(batch(1))
    model.optimize_parameters(1)
    after_one = params(model.net_g)
    assert all(torch.equal(after_one[k], start[k]) for k in start)  # accumulated only
    model.feed_data(batch(2))
    model.optimize_parameters(2)
    after_two = params(model.net_g)
    for k in start:
        expected = start[k] - lr * (grads[0][k] + grads[1][k]) / 2
        torch.testing.assert_close(after_two[k], expected, rtol=1e-4, atol=1e-6)
    assert all(p.grad is None for p in model.net_g.parameters())  # zeroed after the step
    assert set(model.log_dict) == {'l_pix'}


def test_grad_clip_limits_the_gradient_norm_to_the_max_norm(tmp_path, one_thread):
    lr, max_norm = 1e-2, 1e-3
    model = build(PrecisionSRModel, make_opt(tmp_path, train={'grad_clip': True, 'grad_clip_max_norm': max_norm}),
                  sgd_lr=lr)
    start = params(model.net_g)
    grads = fp32_grads(model.net_g, batch(3))
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
    assert norm > 10 * max_norm  # so that the clipping matters
    model.feed_data(batch(3))
    model.optimize_parameters(1)
    after = params(model.net_g)
    for k in start:  # the same direction, scaled to the max norm
        torch.testing.assert_close(after[k], start[k] - lr * grads[k] * (max_norm / norm), rtol=1e-3, atol=1e-9)


def test_bf16_autocast_trains_and_validates_with_float32_outputs_close_to_fp32(tmp_path, one_thread):
    bf16 = build(PrecisionSRModel, make_opt(tmp_path, top={'use_amp': True, 'amp_bf16': True}))
    fp32 = build(PrecisionSRModel, make_opt(tmp_path))
    assert bf16.settings.amp_dtype is torch.bfloat16 and bf16.grad_scaler is None
    data = batch(4)
    for model in (bf16, fp32):
        model.feed_data(data)
        model.test()
    assert bf16.output.dtype == torch.float32
    diff = (bf16.output - fp32.output).abs().max().item()
    assert 0 < diff < 0.05, diff  # autocast did run (not bit-identical) and stays close
    conv = next(m for m in bf16.net_g.modules() if isinstance(m, torch.nn.Conv2d))
    dtypes = []
    conv.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    bf16.optimize_parameters(1)
    assert dtypes == [torch.bfloat16]  # the training forward ran under autocast
    assert math.isfinite(bf16.log_dict['l_pix'])
    assert all(p.dtype == torch.float32 for p in bf16.net_g.parameters())  # master weights stay fp32


def test_channels_last_converts_the_weights_and_batches_and_trains_the_same(tmp_path, one_thread):
    cl = build(PrecisionSRModel, make_opt(tmp_path, top={'use_channels_last': True}))
    plain = build(PrecisionSRModel, make_opt(tmp_path))
    four_d = [p for p in cl.net_g.parameters() if p.dim() == 4]
    assert four_d and all(p.is_contiguous(memory_format=torch.channels_last) for p in four_d)
    assert any(not p.is_contiguous() for p in four_d)  # (3x3 convs really changed layout)
    data = batch(5)
    for model in (cl, plain):
        model.feed_data(data)
        model.optimize_parameters(1)
    assert cl.lq.is_contiguous(memory_format=torch.channels_last) and not cl.lq.is_contiguous()
    torch.testing.assert_close(cl.output, plain.output, rtol=1e-4, atol=1e-5)
    a, b = params(cl.net_g), params(plain.net_g)
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)


def test_fp16_grad_scaler_state_round_trips_through_the_training_state(tmp_path, one_thread):
    """fp16 on the CPU (refused by the option checks, but torch has a CPU GradScaler): the scaler's state is saved
    into the .state file and restored by resume_training."""
    opt = make_opt(tmp_path, top={'use_amp': True})
    model = build(PrecisionSRModel, opt)
    assert model.settings.amp_dtype is torch.float16 and model.grad_scaler is not None
    model.feed_data(batch(6))
    model.optimize_parameters(1)
    model.grad_scaler.update(new_scale=512.)
    saved = model.grad_scaler.state_dict()
    model.save_training_state(0, 1)
    state = load_weights_only(tmp_path / 'training_states' / '1.state')
    assert state['optimizers'][0]['grad_scaler'] == saved and saved['scale'] == 512.

    resumed = build(PrecisionSRModel, opt, seed=1)
    assert resumed.grad_scaler.get_scale() != 512.
    resumed.resume_training(state)
    assert resumed.grad_scaler.state_dict() == saved
    assert 'grad_scaler' not in resumed.optimizer_g.state_dict()['state']
    torch.testing.assert_close(resumed.optimizer_g.state_dict()['state'], model.optimizer_g.state_dict()['state'])


def test_bf16_and_fp32_states_hold_no_grad_scaler(tmp_path, one_thread):
    model = build(PrecisionSRModel, make_opt(tmp_path, top={'use_amp': True, 'amp_bf16': True}))
    model.feed_data(batch(7))
    model.optimize_parameters(1)
    model.save_training_state(0, 1)
    state = load_weights_only(tmp_path / 'training_states' / '1.state')
    assert 'grad_scaler' not in state['optimizers'][0] and set(state) == {'epoch', 'iter', 'optimizers', 'schedulers'}


def test_compile_modes_are_torchs():
    from torch._inductor import list_mode_options
    assert set(compile_modes()) == {'default', *list_mode_options()}
    assert {'default', 'reduce-overhead', 'max-autotune'} <= set(compile_modes())


@pytest.mark.parametrize('top', [{'use_compile': True}, {'use_compile': True, 'compile_mode': 'reduce-overhead'}])
def test_compile_keeps_net_g_the_module_basicsr_saves(tmp_path, top):
    model = build(PrecisionSRModel, make_opt(tmp_path, top=top))
    assert model._train_forward is not model.net_g and model._train_forward._orig_mod is model.net_g
    assert not any(k.startswith('_orig_mod') for k in model.get_bare_model(model.net_g).state_dict())
    assert model.settings.compile_mode == top.get('compile_mode', 'default')
