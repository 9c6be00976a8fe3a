"""Option files are read safely, and the entry points' command line is basicsr's (plus ``--local-rank``).

These run in-process through the patched basicsr functions themselves (``basicsr.utils.options``); the full
pipelines run in subprocesses in ``test_stack_pipelines.py``.
"""
import sys
from collections import OrderedDict

import pytest
import torch
import yaml

from srconvnet_plugin.patches.compat import apply_pipeline_shims
from srconvnet_plugin.utils.options import OptionFileError, OptionLoader, load_options

apply_pipeline_shims()
import basicsr.utils.options as basicsr_options  # noqa: E402  (after the shims, which patch this module)

PAYLOAD = 'name: tiny\nscale: 4\nnum_gpu: 0\nmanual_seed: !!python/object/apply:os.system ["touch MARKER"]\n'

MINIMAL = """name: order_check
model_type: SRModel
scale: 4
num_gpu: {num_gpu}
manual_seed: 0
datasets: {{}}
network_g:
  type: SRConvNet
  upscale: 4
path:
  resume_state: ~
train:
  optim_g:
    type: Adam
    lr: !!float 2e-4
logger:
  print_freq: 100
"""


def test_plain_values_float_tag_and_key_order_survive(tmp_path):
    path = tmp_path / 'ok.yml'
    path.write_text(MINIMAL.format(num_gpu=0))
    opt = load_options(path)
    assert isinstance(opt, OrderedDict)
    assert list(opt) == ['name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'network_g', 'path',
                         'train', 'logger']
    assert list(opt['network_g']) == ['type', 'upscale']
    lr = opt['train']['optim_g']['lr']
    assert isinstance(lr, float) and lr == 2e-4
    assert opt['path']['resume_state'] is None


def test_python_tag_is_refused_with_file_and_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'downloaded.yml'
    path.write_text(PAYLOAD)
    with pytest.raises(OptionFileError, match=r'downloaded\.yml, line 4, column 14: refusing the YAML tag .*'
                       r'python/object/apply:os\.system'):
        load_options(path)
    assert not (tmp_path / 'MARKER').exists()


def test_the_payload_is_live_under_basicsrs_own_loader(tmp_path, monkeypatch):
    """The refusal tests mean something: PyYAML's full Loader, which basicsr uses, does run this payload."""
    monkeypatch.chdir(tmp_path)
    loader = getattr(yaml, 'CLoader', yaml.Loader)
    yaml.load(PAYLOAD, Loader=loader)  # noqa: S506  (deliberately unsafe, to prove the payload works)
    assert (tmp_path / 'MARKER').exists()


def test_basicsr_ordered_yaml_now_returns_the_safe_loader(tmp_path, monkeypatch):
    """Code that calls basicsr's ``ordered_yaml()`` itself gets the safe loader too."""
    monkeypatch.chdir(tmp_path)
    loader, dumper = basicsr_options.ordered_yaml()
    assert loader is OptionLoader
    with pytest.raises(OptionFileError, match='refusing the YAML tag'):
        yaml.load(PAYLOAD, Loader=loader)  # noqa: S506  (this is the safe OptionLoader)
    assert not (tmp_path / 'MARKER').exists()
    text = yaml.dump(OrderedDict([('b', 1), ('a', 2)]), Dumper=dumper)
    assert text.index('b:') < text.index('a:')


def run_parse_options(monkeypatch, *argv, is_train=True, root='/nonexistent-root'):
    monkeypatch.setattr(sys, 'argv', ['srconvnet-train', *map(str, argv)])
    return basicsr_options.parse_options(root, is_train=is_train)


@pytest.mark.parametrize('flag', [['--local-rank=1'], ['--local-rank', '1'], ['--local_rank', '1']])
def test_both_local_rank_spellings_are_accepted(tmp_path, monkeypatch, flag):
    path = tmp_path / 'ok.yml'
    path.write_text(MINIMAL.format(num_gpu=0))
    opt, args = run_parse_options(monkeypatch, '-opt', path, *flag)
    assert args.local_rank == 1
    assert opt['dist'] is False and opt['path']['experiments_root'] == '/nonexistent-root/experiments/order_check'
    assert sys.argv[-len(flag):] == flag  # the caller's argv is left as it was


def test_basicsr_flags_pass_through(tmp_path, monkeypatch):
    path = tmp_path / 'ok.yml'
    path.write_text(MINIMAL.format(num_gpu=0))
    opt, args = run_parse_options(monkeypatch, '-opt', path, '--debug', '--auto_resume', '--launcher', 'none',
                                  '--force_yml', 'train:optim_g:lr=!!float 1e-3', 'scale=2', 'network_g:upscale=2')
    assert opt['name'] == 'debug_order_check' and opt['auto_resume'] is True and opt['scale'] == 2
    assert opt['train']['optim_g']['lr'] == 1e-3
    opt, _ = run_parse_options(monkeypatch, '-opt', path, is_train=False)
    assert opt['path']['results_root'] == '/nonexistent-root/results/order_check'


def test_parse_options_refuses_before_basicsr_reads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / 'bad.yml'
    path.write_text(PAYLOAD)
    with pytest.raises(OptionFileError, match=r'bad\.yml, line 4'):
        run_parse_options(monkeypatch, '-opt', path)
    assert not (tmp_path / 'MARKER').exists()


def test_cuda_request_without_cuda_names_the_option(tmp_path, monkeypatch):
    path = tmp_path / 'gpu.yml'
    path.write_text(MINIMAL.format(num_gpu=1))
    if torch.cuda.is_available():
        opt, _ = run_parse_options(monkeypatch, '-opt', path)
        assert opt['num_gpu'] == 1
    else:
        with pytest.raises(OptionFileError,
                           match=r'gpu\.yml: 1 problem\(s\) in the options:\n  num_gpu: 1 asks for CUDA'):
            run_parse_options(monkeypatch, '-opt', path)
        opt, _ = run_parse_options(monkeypatch, '-opt', path, '--force_yml', 'num_gpu=0')
        assert opt['num_gpu'] == 0


def test_device_and_checkpoint_problems_come_with_the_others_in_one_message(tmp_path, monkeypatch):
    """The CUDA request and the checkpoint format, once refused on their own before the other checks ran, are
    reported by the one collector together with every other problem of the file."""
    path = tmp_path / 'many.yml'
    gpus = 0 if torch.cuda.is_available() else 1  # (a request for CUDA is a problem only without it)
    path.write_text(MINIMAL.format(num_gpu=gpus).replace('  upscale: 4\n', '  upscale: 2\n').replace(
        'logger:\n', 'logger:\n  save_checkpoint_format: ckpt\n'))
    with pytest.raises(OptionFileError) as error:
        run_parse_options(monkeypatch, '-opt', path)
    lines = str(error.value).splitlines()
    expected = ['network_g: upscale: 2 differs from scale: 4; the network would make x2 outputs for x4 ground truth',
                "logger: save_checkpoint_format: 'ckpt' is not one of pth, safetensors"]
    if gpus:
        expected.insert(1, 'num_gpu: 1 asks for CUDA, but torch sees no CUDA device here; use num_gpu: 0 (or auto) '
                           'to run on the CPU')
    assert lines == [f'{path}: {len(expected)} problem(s) in the options:'] + [f'  {line}' for line in expected]
