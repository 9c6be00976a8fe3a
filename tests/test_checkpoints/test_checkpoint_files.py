"""checkpoints.py on real files: .pth and .safetensors read alike, and each kind of bad file refused in one line."""
import pickle
import subprocess

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from checkpoint_files import NOTES, TINY, authors_checkpoint, bad_files, srconvnet
from helpers import plugin_env, python_cmd
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.checkpoints import (CheckpointCodeError, CheckpointError, CheckpointFormatError, CheckpointMismatchError,
                                   CheckpointNotFoundError, CheckpointReadError, check_fits, load_srconvnet,
                                   load_state_dict, save_state_dict)
from srconvnet_plugin.compare import CompareError, load_weights
from srconvnet_plugin.patches.basicsr_checkpoints import SafeTorch, params_file
from srconvnet_plugin.patches.compat import apply_pipeline_shims
from srconvnet_plugin.utils.resume import load_resume_state
from srconvnet.infer import load_model

EDSR_GROUPS = 'conv_first, body.N, conv_after_body, upsample.N, conv_last'


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    return bad_files(tmp_path_factory.mktemp('bad'))


def test_pth_and_safetensors_hold_the_same_state_dict(tmp_path):
    sd = srconvnet().state_dict()
    save_state_dict(sd, tmp_path / 'a.pth')
    save_state_dict(sd, tmp_path / 'a.safetensors')
    assert list(torch.load(tmp_path / 'a.pth', weights_only=True)) == ['params']  # BasicSR's layout
    flat = load_file(str(tmp_path / 'a.safetensors'))  # the flat layout spandrel / traiNNer-redux read
    assert set(flat) == set(sd)
    for path in (tmp_path / 'a.pth', tmp_path / 'a.safetensors'):
        loaded = load_state_dict(path)
        assert set(loaded) == set(sd)
        assert all(torch.equal(loaded[k], v) for k, v in sd.items()), path


def test_writes_never_replace_a_file_unless_asked(tmp_path):
    path = tmp_path / 'x.safetensors'
    path.write_bytes(b'precious')
    with pytest.raises(FileExistsError, match='x.safetensors exists'):
        save_state_dict(srconvnet().state_dict(), path)
    assert path.read_bytes() == b'precious'
    save_state_dict(srconvnet().state_dict(), path, overwrite=True)
    assert load_srconvnet(path)[1]['upscale'] == 4


@pytest.mark.parametrize('kind, reader', [('truncated', 'torch'), ('truncated_st', 'safetensors')])
def test_truncated_files_are_refused_naming_the_file(files, kind, reader):
    with pytest.raises(CheckpointReadError) as err:
        load_state_dict(files[kind])
    message = str(err.value)
    assert message.startswith(f'{files[kind]}: not a complete ') and '(truncated or corrupt)' in message
    assert f'{files[kind].stat().st_size} bytes, {reader} says: ' in message and '\n' not in message
    assert not isinstance(err.value, CheckpointFormatError)  # a damaged checkpoint is still called a checkpoint


NOT_A_CHECKPOINT = 'not a PyTorch checkpoint or .safetensors file: '


@pytest.mark.parametrize('kind, what', [
    ('notes', f"30 bytes of text, beginning {NOTES!r}"),
    ('empty', 'the file is empty (0 bytes)'),
    ('random', "4096 bytes of binary data that is neither a zip archive nor a pickle (PyTorch's formats) nor "
               'safetensors, beginning 5f 82 c2 d9'),
])
def test_a_file_that_is_no_checkpoint_is_called_that(files, kind, what):
    """Text, an empty file, random bytes: not "could run code", not "truncated": not a checkpoint."""
    with pytest.raises(CheckpointFormatError) as err:
        load_state_dict(files[kind])
    assert str(err.value).startswith(f'{files[kind]}: {NOT_A_CHECKPOINT}')
    assert str(err.value)[len(f'{files[kind]}: {NOT_A_CHECKPOINT}'):].startswith(what)
    assert isinstance(err.value, CheckpointReadError)  # --auto_resume skips it as it skips a damaged one


def test_a_text_file_named_safetensors_and_a_plain_pickle_are_no_checkpoints(files):
    with pytest.raises(CheckpointFormatError, match=rf"^{files['notes_st']}: not a \.safetensors file: 30 bytes of "
                       rf"text, beginning {NOTES!r}$"):
        load_state_dict(files['notes_st'])
    with pytest.raises(CheckpointFormatError) as err:
        load_state_dict(files['plain_pickle'])
    size = files['plain_pickle'].stat().st_size
    assert str(err.value).startswith(f"{files['plain_pickle']}: {NOT_A_CHECKPOINT}{size} bytes, a pickle that "
                                     'torch.load does not read as weights (')


def test_a_pickle_that_holds_code_is_refused_and_never_runs(files):
    with pytest.raises(CheckpointCodeError) as err:
        load_state_dict(files['code'])
    assert isinstance(err.value, pickle.UnpicklingError)  # what callers of torch.load catch
    message = str(err.value)
    assert message.startswith(f'{files["code"]}: refusing to load: the file holds more than tensors and plain '
                              'containers (posix.system), so loading it could run code (')
    assert 'weights_only` set to `False`' not in message  # no advice to run it
    assert not (files['code'].parent / 'code_ran').exists()


def test_a_whole_pickled_network_is_refused_naming_its_classes(files):
    """``torch.save(model)`` pickles classes, not only tensors: refused as code, with the first class named."""
    with pytest.raises(CheckpointCodeError) as err:
        load_state_dict(files['pickled_net'])
    assert str(err.value).startswith(f"{files['pickled_net']}: refusing to load: the file holds more than tensors and "
                                     'plain containers (srconvnet.archs.srconvnet_arch.SRConvNet, ')


def test_a_missing_file_is_a_file_not_found_naming_it(files):
    with pytest.raises(CheckpointNotFoundError, match=f'{files["missing"]}: no such file'):
        load_state_dict(files['missing'])
    assert issubclass(CheckpointNotFoundError, FileNotFoundError)


def test_another_architecture_is_described_by_its_key_groups(files):
    net = SRConvNet(upscale=4, **TINY)
    with pytest.raises(CheckpointMismatchError) as err:
        check_fits(load_state_dict(files['edsr']), net, 'EDSR_Mx4.pth')
    message = str(err.value)
    n_keys = len(load_state_dict(files['edsr']))
    assert message == (f'EDSR_Mx4.pth: not an SRConvNet checkpoint (another architecture: its {n_keys} keys look like '
                       f'{EDSR_GROUPS}); {n_keys} of its keys are not SRConvNet keys, and it has none of the '
                       f'{len(net.state_dict())} keys of SRConvNet x4 (num_feat 16, 1 block, 4 heads, 4 kernels)')
    # the converter and infer (no network given) say the same about the keys
    with pytest.raises(CheckpointMismatchError, match=rf'EDSR_Mx4.pth: not an SRConvNet checkpoint \(another '
                       rf'architecture: its {n_keys} keys look like {EDSR_GROUPS}\); it lacks 6 of the 6 keys'):
        load_srconvnet(files['edsr'])


def test_an_srconvnet_of_another_configuration_names_both(files):
    with pytest.raises(CheckpointMismatchError) as err:
        check_fits(load_state_dict(files['x3']), SRConvNet(upscale=4, **TINY), 'SRConvNet_x3.pth')
    assert str(err.value) == ('SRConvNet_x3.pth: an SRConvNet x3 checkpoint (num_feat 16, 1 block, 4 heads, 4 '
                              'kernels); the network is SRConvNet x4 (num_feat 16, 1 block, 4 heads, 4 kernels)')
    deeper = srconvnet(num_block=3, num_kernels=2).state_dict()
    with pytest.raises(CheckpointMismatchError, match=r'an SRConvNet x4 checkpoint \(num_feat 16, 3 blocks, 4 '
                       r'heads, 2 kernels\); the network is SRConvNet x4 \(num_feat 16, 1 block'):
        check_fits(deeper, SRConvNet(upscale=4, **TINY), 'deeper.pth')


def test_an_inconsistent_srconvnet_lists_a_few_keys_and_counts_the_rest():
    sd = srconvnet(num_block=2).state_dict()
    for k in [k for k in sd if k.startswith('blocks.1.ffn.')]:
        del sd[k]
    net = SRConvNet(upscale=4, **{**TINY, 'num_block': 2})
    with pytest.raises(CheckpointMismatchError) as err:
        check_fits(sd, net, 'cut.pth')
    message = str(err.value)
    n_missing = sum(k.startswith('blocks.1.ffn.') for k in net.state_dict())
    assert message.startswith(f'cut.pth: {n_missing} missing keys (blocks.1.ffn.')
    assert message.endswith(', ...)') and message.count('blocks.1.ffn.') == 3


def test_infer_export_and_compare_read_safetensors_like_pth(tmp_path):
    net = srconvnet(upscale=3)
    save_state_dict(net.state_dict(), tmp_path / 'w.pth')
    save_state_dict(net.state_dict(), tmp_path / 'w.safetensors')
    torch.save(authors_checkpoint(net.state_dict()), tmp_path / 'model_x3_latest.pt')
    lq = torch.rand(1, 3, 11, 13)
    outputs = []
    for name in ('w.pth', 'w.safetensors', 'model_x3_latest.pt'):
        model, config = load_model(tmp_path / name)
        assert config == {'num_in_ch': 3, 'num_out_ch': 3, **TINY, 'upscale': 3}
        with torch.inference_mode():
            outputs.append(model(lq))
    assert all(torch.equal(outputs[0], o) for o in outputs[1:])
    target = SRConvNet(upscale=3, **TINY)
    load_weights(target, tmp_path / 'w.safetensors', 'SRConvNet x3')
    with torch.inference_mode():
        assert torch.equal(target.eval()(lq), outputs[0])


def test_compare_refuses_weights_of_another_arch_in_one_line(files):
    with pytest.raises(CompareError) as err:
        load_weights(SRConvNet(upscale=4, **TINY), files['edsr'], 'SRConvNet x4')
    assert str(err.value).startswith(f'{files["edsr"]}: does not fit SRConvNet x4: not an SRConvNet checkpoint')
    assert EDSR_GROUPS in str(err.value) and 'body.0.conv1.weight' not in str(err.value)


def test_safetensors_of_an_ema_run_give_basicsr_both_param_keys(tmp_path):
    """What load_network sees (through basicsr's patched torch): the EMA file for params_ema, the params file
    beside it for params; a lone flat file serves both."""
    ema, raw = srconvnet(seed=1).state_dict(), srconvnet(seed=2).state_dict()
    path = tmp_path / 'net_g_4.safetensors'
    save_state_dict(ema, path)
    lone = SafeTorch.load(str(path))
    assert all(torch.equal(lone['params'][k], ema[k]) and torch.equal(lone['params_ema'][k], ema[k]) for k in ema)
    save_state_dict(raw, params_file(path))
    assert params_file(path) == str(tmp_path / 'net_g_4.params.safetensors')
    both = SafeTorch.load(str(path))
    assert all(torch.equal(both['params'][k], raw[k]) and torch.equal(both['params_ema'][k], ema[k]) for k in ema)


def test_auto_resume_finds_the_safetensors_network_file(tmp_path):
    """basicsr's check_resume names net_g_<iter>.pth; a run that saved .safetensors resumes from those."""
    apply_pipeline_shims()
    from basicsr.models.lr_scheduler import MultiStepRestartLR
    exp = tmp_path / 'experiments' / 'x'
    (exp / 'models').mkdir(parents=True)
    (exp / 'training_states').mkdir()
    net = srconvnet()
    optimizer = torch.optim.Adam(net.parameters())
    scheduler = MultiStepRestartLR(optimizer, milestones=[5], gamma=0.5)
    from srconvnet.atomic_write import atomic_save
    for it in (2, 4):
        atomic_save({'epoch': 0, 'iter': it, 'optimizers': [optimizer.state_dict()],
                     'schedulers': [scheduler.state_dict()]}, exp / 'training_states' / f'{it}.state')
    save_state_dict(net.state_dict(), exp / 'models' / 'net_g_2.safetensors')
    save_state_dict(net.state_dict(), exp / 'models' / 'net_g_4.safetensors')
    (exp / 'models' / 'net_g_4.safetensors').write_bytes(b'cut')  # a truncated newest network: state 4 is skipped
    opt = {'auto_resume': True, 'num_gpu': 0, 'name': 'x', 'network_g': {'type': 'SRConvNet'},
           'path': {'resume_state': None, 'models': str(exp / 'models'),
                    'training_states': str(exp / 'training_states')}}
    with pytest.warns(UserWarning, match='skipping .*net_g_4.safetensors'):
        state = load_resume_state(opt)
    assert state['iter'] == 2
    assert opt['path']['pretrain_network_g'] == str(exp / 'models' / 'net_g_2.safetensors')


@pytest.mark.slow
def test_convert_writes_safetensors_and_refuses_to_overwrite(tmp_path):
    net = srconvnet(upscale=2)
    torch.save(authors_checkpoint(net.state_dict()), tmp_path / 'model_x2_latest.pt')
    cmd = python_cmd('-m', 'srconvnet.convert', tmp_path / 'model_x2_latest.pt', tmp_path / 'x2.safetensors')
    done = subprocess.run(cmd, capture_output=True, text=True, env=plugin_env(), cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert 'upscale=2' in done.stdout
    flat = load_file(str(tmp_path / 'x2.safetensors'))
    assert set(flat) == set(net.state_dict()) and all(torch.equal(flat[k], v) for k, v in net.state_dict().items())
    again = subprocess.run(cmd, capture_output=True, text=True, env=plugin_env(), cwd=tmp_path, timeout=120)
    assert again.returncode == 2
    assert again.stderr == f'error: {tmp_path / "x2.safetensors"} exists (refusing to overwrite it); pass ' \
                           '--overwrite to replace it\n'


@pytest.mark.parametrize('kind', ['truncated', 'code', 'edsr', 'missing', 'notes'])
@pytest.mark.slow
def test_the_commands_refuse_bad_weights_in_one_line(files, kind, tmp_path):
    """infer, export and convert: exit 2, one line naming the file, no traceback."""
    (tmp_path / 'in').mkdir()
    cv2.imwrite(str(tmp_path / 'in' / 'photo.png'), np.full((8, 8, 3), 128, np.uint8))
    commands = {
        'infer': ('srconvnet.infer', '-i', tmp_path / 'in', '-o', tmp_path / 'out', '--weights', files[kind]),
        'export': ('srconvnet.export', tmp_path / 'x.onnx', '--weights', files[kind]),
        'convert': ('srconvnet.convert', files[kind], tmp_path / 'x.safetensors'),
    }
    for name, args in commands.items():
        done = subprocess.run(python_cmd('-m', *args), capture_output=True, text=True, env=plugin_env(),
                              cwd=tmp_path, timeout=120)
        assert done.returncode == 2, (name, done.stderr)
        assert done.stderr.startswith(f'error: {files[kind]}: ') and done.stderr.count('\n') == 1, (name, done.stderr)
        assert 'Traceback' not in done.stderr
    assert not (files[kind].parent / 'code_ran').exists()
    assert not (tmp_path / 'x.safetensors').exists() and not (tmp_path / 'x.onnx').exists()


def test_checkpoint_error_is_a_value_error():
    """The commands catch ValueError / CheckpointError; every refusal is one."""
    for cls in (CheckpointReadError, CheckpointFormatError, CheckpointCodeError, CheckpointMismatchError,
                CheckpointNotFoundError):
        assert issubclass(cls, CheckpointError) and issubclass(cls, ValueError)
