"""Checkpoint files: atomic writes, ``--auto_resume`` from the newest complete state, weights-only loads.

In-process on real files written by ``torch.save`` (a model's state dict, an Adam state and basicsr's scheduler).
"""
import os
import pickle
import shutil
import warnings

import pytest
import torch

from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.checkpoints import CheckpointReadError, load_weights_only
from srconvnet_plugin.patches.compat import apply_pipeline_shims
from srconvnet.atomic_write import leftover_temp_files
from srconvnet.atomic_write import atomic_save
from srconvnet_plugin.utils.resume import load_resume_state

apply_pipeline_shims()
from basicsr.models.lr_scheduler import MultiStepRestartLR  # noqa: E402


class Payload:
    """Unpickling this runs a shell command."""

    def __reduce__(self):
        return os.system, ('touch MARKER',)


def training_state(it):
    net = SRConvNet(num_feat=16, num_block=1, num_heads=4, num_kernels=4)
    opt = torch.optim.Adam(net.parameters(), lr=2e-4)
    net(torch.rand(1, 3, 8, 8)).mean().backward()
    opt.step()
    sched = MultiStepRestartLR(opt, milestones=[5, 15], gamma=0.5)
    return net, {'epoch': 0, 'iter': it, 'optimizers': [opt.state_dict()], 'schedulers': [sched.state_dict()]}


@pytest.fixture(scope='module')
def experiment_template(tmp_path_factory):
    """experiments/x with complete checkpoints at iterations 2 and 4 (written by atomic_save)."""
    exp = tmp_path_factory.mktemp('template') / 'x'
    (exp / 'models').mkdir(parents=True)
    (exp / 'training_states').mkdir()
    for it in (2, 4):
        net, state = training_state(it)
        atomic_save({'params': net.state_dict()}, exp / 'models' / f'net_g_{it}.pth')
        atomic_save(state, exp / 'training_states' / f'{it}.state')
    return exp


@pytest.fixture
def experiment(tmp_path, experiment_template):
    """A fresh copy of the template and the options of a run that ``--auto_resume``s it."""
    exp = tmp_path / 'experiments' / 'x'
    shutil.copytree(experiment_template, exp)
    opt = {'auto_resume': True, 'num_gpu': 0, 'name': 'x', 'network_g': {'type': 'SRConvNet'},
           'path': {'resume_state': None, 'models': str(exp / 'models'),
                    'training_states': str(exp / 'training_states')}}
    return exp, opt


def test_atomic_save_replaces_completely_or_not_at_all(tmp_path):
    path = tmp_path / 'net_g_latest.pth'
    atomic_save({'params': {'w': torch.ones(3)}}, path)
    before = path.read_bytes()
    with pytest.raises(Exception):  # fails half-way through pickling (a local function cannot be pickled)
        atomic_save({'params': {'w': torch.zeros(3)}, 'hook': lambda: None}, path)
    assert path.read_bytes() == before and leftover_temp_files(tmp_path) == []
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # like a plain open(), not mkstemp's 0600
    atomic_save({'params': {'w': torch.zeros(3)}}, path)
    assert torch.equal(load_weights_only(path)['params']['w'], torch.zeros(3))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_auto_resume_skips_incomplete_states_and_removes_leftovers(experiment):
    exp, opt = experiment
    states, models = exp / 'training_states', exp / 'models'
    # what a writer killed mid-save leaves (basicsr writes in place): a truncated 6.state with its net_g_6.pth ...
    (states / '6.state').write_bytes((states / '4.state').read_bytes()[:3000])
    (models / 'net_g_6.pth').write_bytes((models / 'net_g_4.pth').read_bytes())
    # ... a complete 8.state whose network file was cut short, and the temp files of our own interrupted saves
    (states / '8.state').write_bytes((states / '4.state').read_bytes())
    (models / 'net_g_8.pth').write_bytes((models / 'net_g_4.pth').read_bytes()[:-100])
    (states / '.10.state.abc123.tmp').write_bytes(b'partial')
    (models / '.net_g_10.pth.xyz789.tmp').write_bytes(b'partial')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        state = load_resume_state(opt)
    messages = [str(w.message) for w in caught]
    assert state['iter'] == 4 and opt['path']['resume_state'] == str(states / '4.state')
    assert opt['path']['pretrain_network_g'] == str(models / 'net_g_4.pth')
    assert any(f'skipping {states / "6.state"}: {states / "6.state"}: not a complete checkpoint' in m
               for m in messages), messages
    assert any(f'skipping {models / "net_g_8.pth"}' in m for m in messages), messages
    assert any('removed 1 incomplete temporary file(s) of an interrupted save in' in m and '.10.state.abc123.tmp' in m
               for m in messages), messages
    assert leftover_temp_files(states) == leftover_temp_files(models) == []
    assert (states / '6.state').exists()  # skipped, not deleted: only our own temp files are removed


def test_explicit_resume_state_that_is_incomplete_is_an_error_naming_it(experiment):
    exp, opt = experiment
    bad = exp / 'training_states' / '6.state'
    bad.write_bytes((exp / 'training_states' / '4.state').read_bytes()[:3000])
    opt.update(auto_resume=False)
    opt['path']['resume_state'] = str(bad)
    with pytest.raises(CheckpointReadError, match=rf'{bad}: not a complete checkpoint \(truncated or corrupt\)'):
        load_resume_state(opt)


def test_auto_resume_refuses_a_state_that_carries_code(experiment, monkeypatch):
    exp, opt = experiment
    monkeypatch.chdir(exp)
    _, state = training_state(6)
    state['schedulers'].append(Payload())
    torch.save(state, exp / 'training_states' / '6.state')
    (exp / 'models' / 'net_g_6.pth').write_bytes((exp / 'models' / 'net_g_4.pth').read_bytes())
    with pytest.raises(pickle.UnpicklingError, match=r'6\.state: refusing to load: the file holds more than tensors'):
        load_resume_state(opt)  # refused loudly, not skipped in favour of an older state
    assert not (exp / 'MARKER').exists()
