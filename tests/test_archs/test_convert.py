"""The converter turns the authors' checkpoints into BasicSR checkpoints, and refuses what it does not recognise."""
import os
import subprocess
import sys

import pytest
import torch

from basicsr.models import build_model
from conftest import REPO_ROOT
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.checkpoints import CheckpointError
from srconvnet.convert import convert

SMALL = dict(num_feat=16, num_block=2, num_heads=4, num_kernels=4)


def authors_state_dict(upscale=4, prefix='module.', seed=0):
    """A state dict laid out like the reference's: MeanShift entries included, optional DataParallel prefix."""
    torch.manual_seed(seed)
    sd = SRConvNet(upscale=upscale, **SMALL).state_dict()
    meanshift = {
        'sub_mean.weight': torch.eye(3).view(3, 3, 1, 1),
        'sub_mean.bias': torch.zeros(3),
        'add_mean.weight': torch.eye(3).view(3, 3, 1, 1),
        'add_mean.bias': torch.zeros(3),
    }
    return {prefix + k: v for k, v in {**meanshift, **sd}.items()}


def training_checkpoint(state_dict):
    return {'epoch': 3, 'model_state_dict': state_dict, 'optimizer_state_dict': {}, 'scheduler_state_dict': {},
            'stat_dict': {'psnr': [30.0]}}


@pytest.mark.parametrize('upscale', [2, 3, 4])
@pytest.mark.parametrize('layout', ['training', 'bare-prefixed', 'bare'])
def test_converts_every_layout_and_infers_config(upscale, layout, tmp_path):
    sd = authors_state_dict(upscale, prefix='' if layout == 'bare' else 'module.')
    torch.save(training_checkpoint(sd) if layout == 'training' else sd, tmp_path / 'model_latest.pt')
    config = convert(tmp_path / 'model_latest.pt', tmp_path / 'out.pth')
    assert config == {'num_in_ch': 3, 'num_out_ch': 3, **SMALL, 'upscale': upscale}
    params = torch.load(tmp_path / 'out.pth', weights_only=True)['params']
    assert not any(k.startswith(('module.', 'sub_mean', 'add_mean')) for k in params)
    model = SRConvNet(**config)
    model.load_state_dict(params, strict=True)
    expected = {k.removeprefix('module.'): v for k, v in sd.items()}
    for k, v in model.state_dict().items():
        assert torch.equal(v, expected[k]), k


def test_converted_checkpoint_loads_strictly_in_srmodel_and_reproduces_reference(golden_dir, tmp_path):
    golden = torch.load(golden_dir / 'srconvnet_x3_small_b.pt', weights_only=True)
    torch.save(training_checkpoint({f'module.{k}': v for k, v in golden['state_dict'].items()}),
               tmp_path / 'model_x3_latest.pt')
    config = convert(tmp_path / 'model_x3_latest.pt', tmp_path / 'SRConvNet_x3.pth')
    opt = {
        'name': 'golden', 'model_type': 'SRModel', 'scale': 3, 'num_gpu': 0, 'is_train': False, 'dist': False,
        'network_g': {'type': 'SRConvNet', **config},
        'path': {'pretrain_network_g': str(tmp_path / 'SRConvNet_x3.pth'), 'strict_load_g': True,
                 'param_key_g': 'params'},
    }
    model = build_model(opt)
    model.net_g.double()
    model.feed_data({'lq': golden['input'] / 255.})
    model.test()
    assert (model.output * 255. - golden['output']).abs().max().item() < 1e-8


def test_refuses_unknown_and_mismatched_keys(tmp_path):
    sd = authors_state_dict(4)
    sd['module.blocks.0.attention.extra'] = torch.zeros(1)
    del sd['module.blocks.1.ffn.proj_out.bias']
    torch.save(sd, tmp_path / 'bad.pt')
    with pytest.raises(CheckpointError) as err:
        convert(tmp_path / 'bad.pt', tmp_path / 'out.pth')
    msg = str(err.value)
    assert 'bad.pt' in msg
    assert 'blocks.1.ffn.proj_out.bias' in msg and 'blocks.0.attention.extra' in msg
    assert not (tmp_path / 'out.pth').exists()


def test_refuses_a_non_srconvnet_state_dict(tmp_path):
    from basicsr.archs.edsr_arch import EDSR
    torch.save({'params': EDSR(3, 3, num_feat=16, num_block=1).state_dict()}, tmp_path / 'edsr.pth')
    with pytest.raises(CheckpointError, match=r'edsr.pth: not an SRConvNet checkpoint \(another architecture: its 14 '
                       r'keys look like conv_first, body.N, conv_after_body, upsample.N, conv_last\)'):
        convert(tmp_path / 'edsr.pth', tmp_path / 'out.pth')


class RunsCodeWhenUnpickled:
    """What a malicious checkpoint carries: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_refuses_a_checkpoint_that_carries_code(tmp_path):
    marker = tmp_path / 'code_ran'
    torch.save({'model_state_dict': authors_state_dict(2), 'extra': RunsCodeWhenUnpickled(marker)},
               tmp_path / 'code.pt')
    with pytest.raises(CheckpointError, match=r'code.pt: refusing to load: .* could run code \(.*posix.system'):
        convert(tmp_path / 'code.pt', tmp_path / 'out.pth')
    assert not marker.exists()
    assert not (tmp_path / 'out.pth').exists()


def test_never_overwrites_without_asking(tmp_path):
    torch.save(authors_state_dict(2), tmp_path / 'in.pt')
    (tmp_path / 'out.pth').write_bytes(b'precious')
    with pytest.raises(FileExistsError, match='out.pth'):
        convert(tmp_path / 'in.pt', tmp_path / 'out.pth')
    assert (tmp_path / 'out.pth').read_bytes() == b'precious'
    convert(tmp_path / 'in.pt', tmp_path / 'out.pth', overwrite=True)
    assert 'params' in torch.load(tmp_path / 'out.pth', weights_only=True)


@pytest.mark.slow
def test_command_line(tmp_path):
    torch.save(training_checkpoint(authors_state_dict(3)), tmp_path / 'model_x3_latest.pt')
    cmd = [sys.executable, '-m', 'srconvnet.convert', str(tmp_path / 'model_x3_latest.pt'),
           str(tmp_path / 'x3.pth')]
    env = {'PYTHONPATH': str(REPO_ROOT), 'PATH': '/usr/bin:/bin'}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert 'upscale=3' in done.stdout and 'type: SRConvNet' in done.stdout
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert again.returncode == 2 and 'exists' in again.stderr
