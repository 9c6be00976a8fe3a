"""The training keys are checked with the rest of the option file, before anything is built: each refusal names
the file, the key and the value (through basicsr's patched ``parse_options``, on real tiny LMDB sets)."""
import subprocess
import time

import pytest
import torch

from helpers import plugin_env, python_cmd
from training_helpers import training_yaml  # (first: puts tests/test_robust on sys.path)
from test_robust_options import parse, refused  # noqa: I100  (the robust tests' in-process parse and refusal)


def yml(sets, **kw):
    return training_yaml(sets, 'checks', tb_logger=False, **kw)


def test_the_keys_with_good_values_pass(tmp_path, monkeypatch, tiny_sr_sets):
    opt, _ = parse(tmp_path, monkeypatch, yml(
        tiny_sr_sets, top=['use_amp: true', 'amp_bf16: true', 'use_channels_last: true', 'use_compile: false',
                           'compile_mode: max-autotune'],
        train=['grad_clip: true', 'grad_clip_max_norm: 0.5'], dataset=['accum_iter: 4']))
    assert opt['use_amp'] is True and opt['train']['grad_clip_max_norm'] == 0.5
    assert opt['datasets']['train']['accum_iter'] == 4


@pytest.mark.parametrize('lines,expected', [
    (dict(top=['use_amp: yes please']), "use_amp: 'yes please' is not true or false"),
    (dict(top=['use_amp: true', 'amp_bf16: 1']), 'amp_bf16: 1 is not true or false'),
    (dict(top=['use_channels_last: "true"']), "use_channels_last: 'true' is not true or false"),
    (dict(top=['use_compile: on_gpu']), "use_compile: 'on_gpu' is not true or false"),
    (dict(top=['compile_mode: fastest']), "compile_mode: 'fastest' is not a torch.compile mode; use one of default, "),
    (dict(train=['grad_clip: 1.0']), 'train: grad_clip: 1.0 is not true or false'),
    (dict(train=['grad_clip: true', 'grad_clip_max_norm: 0']),
     'train: grad_clip_max_norm: 0: the max gradient norm must be a number > 0'),
    (dict(train=['grad_clip: true', 'grad_clip_max_norm: -1.5']), 'train: grad_clip_max_norm: -1.5: the max'),
    (dict(train=['grad_clip_max_norm: "1"']), "train: grad_clip_max_norm: '1': the max gradient norm must be"),
    (dict(dataset=['accum_iter: 0']), 'datasets: train: accum_iter: 0: accumulate over an integer number of batches'),
    (dict(dataset=['accum_iter: 2.5']), 'datasets: train: accum_iter: 2.5: accumulate over an integer'),
    (dict(dataset=['accum_iter: true']), 'datasets: train: accum_iter: True: accumulate over an integer'),
    (dict(top=['amp_bf16: true']), 'amp_bf16: true does nothing without use_amp: true'),
])
def test_bad_values_are_refused_naming_the_key(tmp_path, monkeypatch, tiny_sr_sets, lines, expected):
    assert expected in refused(tmp_path, monkeypatch, yml(tiny_sr_sets, **lines))


def test_fp16_is_refused_where_training_runs_on_the_cpu(tmp_path, monkeypatch, tiny_sr_sets):
    # num_gpu: 0 (the tiny configs) trains on the CPU even where CUDA exists
    msg = refused(tmp_path, monkeypatch, yml(tiny_sr_sets, top=['use_amp: true']))
    assert 'use_amp: true without amp_bf16: true is fp16 autocast with a GradScaler, which needs a CUDA GPU' in msg
    assert 'add amp_bf16: true' in msg


def test_keys_for_a_model_they_do_not_apply_to(tmp_path, monkeypatch, tiny_sr_sets):
    text = yml(tiny_sr_sets, top=['use_amp: true', 'amp_bf16: true'], dataset=['accum_iter: 2'])
    msg = refused(tmp_path, monkeypatch, text.replace('model_type: SRModel', 'model_type: SRGANModel'))
    assert 'model_type: SRGANModel: use_amp, amp_bf16, datasets: train: accum_iter take(s) effect only for ' \
           'model_type: SRModel' in msg
    # their defaults are harmless anywhere
    text = yml(tiny_sr_sets, top=['use_amp: false'], dataset=['accum_iter: 1'])
    opt, _ = parse(tmp_path, monkeypatch, text.replace('model_type: SRModel', 'model_type: SwinIRModel'))
    assert opt['model_type'] == 'SwinIRModel'


def test_all_problems_in_one_message(tmp_path, monkeypatch, tiny_sr_sets):
    msg = refused(tmp_path, monkeypatch, yml(tiny_sr_sets, top=['use_channels_last: 2'],
                                             train=['grad_clip_max_norm: 0'], dataset=['accum_iter: -1']))
    assert '3 problem(s) in the options' in msg


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without CUDA')
@pytest.mark.slow
def test_the_entry_point_refuses_fp16_in_the_first_seconds_and_runs_nothing(tmp_path, tiny_sr_sets):
    (tmp_path / 'train.yml').write_text(yml(tiny_sr_sets, top=['use_amp: true']).replace('num_gpu: 0', 'num_gpu: auto'))
    start = time.monotonic()
    proc = subprocess.run(python_cmd('-m', 'srconvnet_plugin.train', '-opt', 'train.yml'), cwd=tmp_path,
                          env=plugin_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert 'use_amp: true without amp_bf16: true is fp16' in proc.stderr and 'Traceback' not in proc.stderr
    assert not (tmp_path / 'experiments').exists()
    assert time.monotonic() - start < 60  # (the import of torch and basicsr included, on a loaded machine)


def test_the_papers_option_files_train_in_fp32():
    """The protocol's files set none of the training keys: fp32, no clipping, one batch per step."""
    from helpers import REPO_ROOT
    from srconvnet_plugin.models.precision_model import TOP_LEVEL_FLAGS
    from srconvnet_plugin.utils.options import load_options
    files = sorted((REPO_ROOT / 'options' / 'train' / 'SRConvNet').glob('train_SRConvNet_x*.yml'))
    assert len(files) == 3
    for path in files:
        opt = load_options(str(path))
        assert not set(opt) & {*TOP_LEVEL_FLAGS, 'compile_mode'}, path
        assert not set(opt['train']) & {'grad_clip', 'grad_clip_max_norm'}, path
        assert 'accum_iter' not in opt['datasets']['train'], path
