"""On a CUDA GPU (skipped elsewhere; ``scripts/gpu_check.sh`` runs them with ``pytest -m cuda``): autocast outputs
against fp32, AMP training steps of PrecisionSRModel, and the NCCL process group at world size 1 (in process and
through torchrun + the training entry point)."""
import subprocess

import pytest
import torch

from helpers import REPO_ROOT, free_port, ok, plugin_env, python_cmd
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet_plugin.patches.compat import apply_pipeline_shims
from training_helpers import batch, build, training_yaml

apply_pipeline_shims()
from srconvnet_plugin.models.precision_model import PrecisionSRModel  # noqa: E402
from training_helpers import make_opt  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')]


@pytest.mark.parametrize('dtype,tol', [(torch.float16, 0.02), (torch.bfloat16, 0.05)])
def test_autocast_outputs_are_close_to_fp32(dtype, tol):
    torch.manual_seed(0)
    net = SRConvNet(upscale=4).cuda().eval()
    x = torch.rand(2, 3, 48, 64, device='cuda')
    with torch.inference_mode():
        ref = net(x)
        with torch.autocast('cuda', dtype=dtype):
            out = net(x)
    assert out.shape == ref.shape == (2, 3, 192, 256) and torch.isfinite(out).all()
    diff = (out.float() - ref).abs()
    assert 0 < diff.max().item() < tol, diff.max().item()  # autocast ran, and stays close
    assert diff.mean().item() < tol / 10


@pytest.mark.parametrize('amp', [{'use_amp': True}, {'use_amp': True, 'amp_bf16': True}])
def test_amp_training_steps_on_cuda(tmp_path, amp):
    opt = make_opt(tmp_path, top={**amp, 'num_gpu': 1, 'use_channels_last': True}, train={'grad_clip': True})
    model, fp32 = build(PrecisionSRModel, opt), build(PrecisionSRModel, make_opt(tmp_path, top={'num_gpu': 1}))
    assert model.device.type == 'cuda'
    assert (model.grad_scaler is not None) == ('amp_bf16' not in amp)
    losses = {}
    for it in (1, 2, 3):
        for name, m in (('amp', model), ('fp32', fp32)):
            m.feed_data(batch(it))
            m.optimize_parameters(it)
            losses.setdefault(name, []).append(m.log_dict['l_pix'])
    assert all(abs(a - b) < 0.01 for a, b in zip(losses['amp'], losses['fp32'])), losses
    assert all(torch.isfinite(p).all() and p.dtype == torch.float32 for p in model.net_g.parameters())
    if model.grad_scaler is not None:
        assert model.grad_scaler.get_scale() > 0 and 'grad_scaler' in model.optimizer_g.state_dict()


def test_nccl_process_group_at_world_size_one(one_thread):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    dist.init_process_group('nccl', init_method=f'tcp://127.0.0.1:{free_port()}', rank=0, world_size=1)
    try:
        assert dist.get_backend() == 'nccl' and dist.get_world_size() == 1
        torch.manual_seed(0)
        net = DistributedDataParallel(SRConvNet(upscale=2, num_feat=16, num_block=1, num_heads=4, num_kernels=4)
                                      .cuda(), device_ids=[0])
        x = torch.rand(2, 3, 16, 16, device='cuda')
        with torch.autocast('cuda', dtype=torch.bfloat16):
            loss = net(x).float().abs().mean()
        loss.backward()
        t = torch.ones(1, device='cuda')
        dist.all_reduce(t)
        assert t.item() == 1 and torch.isfinite(loss) and net.module.to_feat.weight.grad is not None
    finally:
        dist.destroy_process_group()


def test_torchrun_training_with_nccl_and_bf16(tmp_path, tiny_sr_sets):
    name = 'nccl'
    text = training_yaml(tiny_sr_sets, name, total_iter=2, save_freq=2, val_freq=2, tb_logger=False,
                         top=['use_amp: true', 'amp_bf16: true'])
    (tmp_path / 'train.yml').write_text(text.replace('num_gpu: 0', 'num_gpu: 1'))
    env = plugin_env()
    env.update(PORT=str(free_port()), PYTHON=python_cmd()[0])
    proc = ok(subprocess.run(['bash', str(REPO_ROOT / 'scripts' / 'dist_train.sh'), '1', 'train.yml'], cwd=tmp_path,
                             env=env, capture_output=True, text=True, timeout=300))
    [log] = (tmp_path / 'experiments' / name).glob(f'train_{name}_*.log')
    text = log.read_text()
    assert 'World size (gpu number): 1' in text and 'Network: DistributedDataParallel - SRConvNet' in text
    assert 'mixed precision: bf16 autocast' in text, proc.stdout[-2000:]


def test_compiled_training_steps_match_eager(tmp_path):
    """use_compile: the compiled training forward gives the eager losses; net_g keeps its own parameter names."""
    top = {'num_gpu': 1, 'use_amp': True, 'amp_bf16': True}
    compiled = build(PrecisionSRModel, make_opt(tmp_path, top={**top, 'use_compile': True}))
    eager = build(PrecisionSRModel, make_opt(tmp_path, top=top))
    for it in (1, 2, 3):
        for m in (compiled, eager):
            m.feed_data(batch(it))
            m.optimize_parameters(it)
        assert abs(compiled.log_dict['l_pix'] - eager.log_dict['l_pix']) < 5e-3
    assert compiled.get_bare_model(compiled.net_g).state_dict().keys() == eager.net_g.state_dict().keys()
