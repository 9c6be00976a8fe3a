"""BasicSR's train/test pipelines through the plugin's entry points (real subprocesses): a bad
``path: pretrain_network_g`` ends in one line and exit 2, ``.safetensors`` works for pretrained weights, and training
saves ``net_g`` as safetensors (``logger: save_checkpoint_format``) and resumes from it."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from checkpoint_files import authors_checkpoint, bad_files
from helpers import plugin_env, python_cmd
from srconvnet.checkpoints import load_state_dict

pytestmark = pytest.mark.slow

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test_stack'))
from stack_options import make_test_yaml, make_train_yaml  # noqa: E402  (the stack tests' option files)

TINY_X4 = 'SRConvNet x4 (num_feat 16, 1 block, 4 heads, 4 kernels)'
REFUSALS = {
    'truncated': 'not a complete checkpoint (truncated or corrupt): 5000 bytes, torch says: ',
    'truncated_st': 'not a complete .safetensors file (truncated or corrupt): ',
    'code': 'refusing to load: the file holds more than tensors and plain containers (posix.system), so loading it '
            'could run code',
    'edsr': 'not an SRConvNet checkpoint (another architecture: its 74 keys look like conv_first, body.N, '
            f'conv_after_body, upsample.N, conv_last); 74 of its keys are not SRConvNet keys, and it has none of the '
            f'36 keys of {TINY_X4}',
    'x3': f'an SRConvNet x3 checkpoint (num_feat 16, 1 block, 4 heads, 4 kernels); network_g asks for {TINY_X4}',
    'missing': 'no such file',
}


def run(args, cwd):
    return subprocess.run(python_cmd('-m', *args), cwd=cwd, env=plugin_env(), capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    return bad_files(tmp_path_factory.mktemp('checkpoints'))


def assert_refused(done, prog, path, what):
    assert done.returncode == 2, done.stderr[-3000:]
    last = done.stderr.rstrip('\n').splitlines()[-1]
    assert last.startswith(f'{prog}: error: path: pretrain_network_g: {path}: {what}'), done.stderr[-3000:]
    assert 'Traceback' not in done.stderr + done.stdout
    # no walls of key names (basicsr's _print_different_keys_loading / load_state_dict)
    assert len(re.findall(r'blocks\.0\.|body\.\d+\.', done.stderr + done.stdout)) <= 1


@pytest.mark.parametrize('kind', sorted(REFUSALS))
def test_test_pipeline_refuses_a_bad_pretrain_network_g(kind, files, tiny_sr_sets, tmp_path):
    (tmp_path / 'test.yml').write_text(make_test_yaml(tiny_sr_sets, 'bad', files[kind]))
    done = run(['srconvnet_plugin.test', '-opt', 'test.yml'], tmp_path)
    assert_refused(done, 'srconvnet-test', files[kind], REFUSALS[kind])
    assert not (files[kind].parent / 'code_ran').exists()


def test_train_pipeline_refuses_a_bad_pretrain_network_g(files, tiny_sr_sets, tmp_path):
    yml = make_train_yaml(tiny_sr_sets, 'bad_pretrain', total_iter=2)
    (tmp_path / 'train.yml').write_text(yml.replace('pretrain_network_g: ~', f'pretrain_network_g: {files["edsr"]}'))
    assert_refused(run(['srconvnet_plugin.train', '-opt', 'train.yml'], tmp_path), 'srconvnet-train', files['edsr'],
                   REFUSALS['edsr'])


def test_test_pipeline_reads_safetensors_and_the_authors_layout_like_pth(files, tiny_sr_sets, tmp_path):
    folder = files['x3'].parent
    torch.save(authors_checkpoint(load_state_dict(folder / 'good.pth')), tmp_path / 'model_x4_latest.pt')
    metrics = {}
    for path in (folder / 'good.pth', folder / 'good.safetensors', tmp_path / 'model_x4_latest.pt'):
        label = path.name.replace('.', '_')
        (tmp_path / f'{label}.yml').write_text(make_test_yaml(tiny_sr_sets, label, path))
        done = run(['srconvnet_plugin.test', '-opt', f'{label}.yml'], tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        [log] = (tmp_path / 'results' / label).glob('test_*.log')
        text = log.read_text()
        assert f'Loading SRConvNet model from {path}, with param key: [params].' in text
        metrics[path.name] = re.findall(r'# (psnr|ssim): ([\d.]+)', text)
    assert len(metrics['good.pth']) == 2
    assert metrics['good.pth'] == metrics['good.safetensors'] == metrics['model_x4_latest.pt']


def test_training_saves_safetensors_with_ema_and_resumes_from_them(tiny_sr_sets, tmp_path):
    yml = make_train_yaml(tiny_sr_sets, 'st', total_iter=2, save_freq=2, val_freq=1000, tb_logger=False)
    yml = yml.replace('ema_decay: 0\n', 'ema_decay: 0.999\n')
    yml = yml.replace('logger:\n', 'logger:\n  save_checkpoint_format: safetensors\n')
    (tmp_path / 'train.yml').write_text(yml)
    first = run(['srconvnet_plugin.train', '-opt', 'train.yml'], tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    models = tmp_path / 'experiments' / 'st' / 'models'
    assert sorted(p.name for p in models.iterdir()) == [
        'net_g_2.params.safetensors', 'net_g_2.safetensors', 'net_g_latest.params.safetensors',
        'net_g_latest.safetensors']
    ema, raw = load_file(str(models / 'net_g_2.safetensors')), load_file(str(models / 'net_g_2.params.safetensors'))
    assert set(ema) == set(raw) and any(not torch.equal(ema[k], raw[k]) for k in ema)  # both kept, they differ

    second = run(['srconvnet_plugin.train', '-opt', 'train.yml', '--auto_resume', '--force_yml',
                  'train:total_iter=4'], tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    logs = sorted((tmp_path / 'experiments' / 'st').glob('train_st_*.log'), key=lambda p: p.stat().st_mtime)
    text = logs[-1].read_text()
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', text)
    for key in ('params', 'params_ema'):
        assert f'Loading SRConvNet model from {models / "net_g_2.safetensors"}, with param key: [{key}].' in text
    assert (models / 'net_g_4.safetensors').is_file() and not list(models.glob('*.pth'))


def test_an_unknown_checkpoint_format_is_an_option_error(tiny_sr_sets, tmp_path):
    yml = make_train_yaml(tiny_sr_sets, 'fmt', total_iter=2)
    (tmp_path / 'train.yml').write_text(yml.replace('logger:\n', 'logger:\n  save_checkpoint_format: ckpt\n'))
    done = run(['srconvnet_plugin.train', '-opt', 'train.yml'], tmp_path)
    assert done.returncode == 2
    assert done.stderr == ("srconvnet-train: error: train.yml: 1 problem(s) in the options:\n"
                           "  logger: save_checkpoint_format: 'ckpt' is not one of pth, safetensors\n")
    assert not (tmp_path / 'experiments').exists()
