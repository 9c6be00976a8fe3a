"""Checkpoints go through ``weights_only=True``: basicsr's ``BaseModel.load_network`` and the resume loader."""
import os
import pickle

import pytest
import torch

from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet_plugin.patches.compat import apply_pipeline_shims
from srconvnet_plugin.utils.resume import load_resume_state

apply_pipeline_shims()
from basicsr.models.base_model import BaseModel  # noqa: E402


class Payload:
    """What a hostile checkpoint carries: unpickling it would run a shell command."""

    def __reduce__(self):
        return os.system, ('touch MARKER',)


def tiny():
    return SRConvNet(num_feat=16, num_block=1, num_heads=4, num_kernels=4, upscale=4)


def test_load_network_loads_basicsr_checkpoints(tmp_path):
    src, dst = tiny(), tiny()
    torch.save({'params': src.state_dict()}, tmp_path / 'net_g.pth')
    BaseModel({'num_gpu': 0, 'is_train': False}).load_network(dst, str(tmp_path / 'net_g.pth'))
    for k, v in src.state_dict().items():
        assert torch.equal(v, dst.state_dict()[k]), k


def test_load_network_refuses_code_in_a_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({'params': tiny().state_dict(), 'extra': Payload()}, tmp_path / 'hostile.pth')
    with pytest.raises(pickle.UnpicklingError, match=r'hostile\.pth: refusing to load'):
        BaseModel({'num_gpu': 0, 'is_train': False}).load_network(tiny(), str(tmp_path / 'hostile.pth'))
    assert not (tmp_path / 'MARKER').exists()


def test_resume_state_is_loaded_weights_only_and_missing_files_are_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opt = {'auto_resume': False, 'num_gpu': 0, 'path': {'resume_state': str(tmp_path / 'nope.state')}}
    with pytest.raises(FileNotFoundError, match=r'resume_state: .*nope\.state does not exist'):
        load_resume_state(opt)
    torch.save({'iter': 3, 'epoch': 1, 'optimizers': [], 'schedulers': [Payload()]}, tmp_path / '3.state')
    opt['path']['resume_state'] = str(tmp_path / '3.state')
    with pytest.raises(pickle.UnpicklingError, match=r'3\.state: refusing to load'):
        load_resume_state(opt)
    assert not (tmp_path / 'MARKER').exists()


def test_auto_resume_without_states_starts_fresh(tmp_path):
    opt = {'auto_resume': True, 'num_gpu': 0, 'name': 'x',
           'path': {'resume_state': None, 'training_states': str(tmp_path / 'experiments/x/training_states')}}
    assert load_resume_state(opt) is None
    assert opt['path']['resume_state'] is None
