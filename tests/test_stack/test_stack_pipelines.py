"""BasicSR's own train/test pipelines run SRConvNet through the plugin's entry points, on CPU, end to end.

Every run is a real subprocess (``python -m srconvnet_plugin.train`` / ``.test``, torchrun) in a temporary working
directory, on tiny LMDB/folder sets made from scikit-image photographs (``tests/helpers.py``).
"""
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import basicsr
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import img2tensor, tensor2img
from helpers import REPO_ROOT, free_port, ok, plugin_env, python_cmd
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.checkpoints import load_weights_only
from stack_options import make_test_yaml, make_train_yaml

pytestmark = pytest.mark.slow

NAME = 'srconvnet_tiny_x4'
ITER_LINE = re.compile(r'\[epoch:\s*(\d+), iter:\s*([\d,]+), lr:\(([^,]+),\)\]')
VAL_BLOCK = re.compile(r'Validation tiny_val\n\s*# psnr: ([\d.]+)\tBest: [\d.]+ @ (\S+) iter\n\s*# ssim: ([\d.]+)')


def run(cmd, cwd, timeout=240, **kw):
    """Run ``cmd`` in ``cwd`` with this checkout importable; return the CompletedProcess (text)."""
    return subprocess.run(cmd, cwd=cwd, env=plugin_env(), capture_output=True, text=True, timeout=timeout, **kw)


def train_logs(exp_dir):
    return sorted(exp_dir.glob(f'train_{exp_dir.name}_*.log'))


def logged_iters(log_text):
    """[(iter, lr)] from basicsr's MessageLogger lines."""
    return [(int(it.replace(',', '')), float(lr)) for _, it, lr in ITER_LINE.findall(log_text)]


def logged_validations(log_text):
    """{iteration label: (psnr, ssim)} from basicsr's validation blocks."""
    return {it: (float(p), float(s)) for p, it, s in VAL_BLOCK.findall(log_text)}


def expected_lr(it, base=2e-4, milestones=(5, 15), gamma=0.5):
    """MultiStepRestartLR as basicsr steps it: iteration ``it`` trains after ``it - 1`` scheduler steps."""
    return base * gamma ** sum(m <= it - 1 for m in milestones)


def read_rgb(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f'cannot read {path}'
    return img


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_sr_sets):
    """Train 10 iterations, then ``--auto_resume`` to 20 with ``--force_yml train:total_iter=20``."""
    work = tmp_path_factory.mktemp('work')
    (work / 'train.yml').write_text(make_train_yaml(tiny_sr_sets, NAME, total_iter=10))
    first = ok(run(python_cmd('-m', 'srconvnet_plugin.train', '-opt', 'train.yml'), work))
    exp = work / 'experiments' / NAME
    [log1] = train_logs(exp)
    second = ok(run(python_cmd('-m', 'srconvnet_plugin.train', '-opt', 'train.yml', '--auto_resume',
                               '--force_yml', 'train:total_iter=20'), work))
    log2 = [p for p in train_logs(exp) if p != log1]
    assert len(log2) == 1, f'expected one new log, found {log2}'
    return {'work': work, 'exp': exp, 'log1': log1.read_text(), 'log2': log2[0].read_text(),
            'stdout': first.stdout + second.stdout}


def test_training_validates_with_y_psnr_and_ssim(trained, tiny_sr_sets):
    vals = logged_validations(trained['log1'])
    assert '10' in vals, trained['log1'][-2000:]
    psnr, ssim = vals['10']
    # recompute from the images the pipeline saved, with basicsr's metrics on the Y channel
    val = tiny_sr_sets['val']
    ps, ss = [], []
    for name in val.names:
        sr = read_rgb(trained['exp'] / 'visualization' / name / f'{name}_10.png')
        gt = read_rgb(val.gt / f'{name}.png')
        assert sr.shape == gt.shape == (96, 96, 3)
        ps.append(calculate_psnr(sr, gt, crop_border=4, test_y_channel=True))
        ss.append(calculate_ssim(sr, gt, crop_border=4, test_y_channel=True))
    assert np.mean(ps) == pytest.approx(psnr, abs=6e-5)
    assert np.mean(ss) == pytest.approx(ssim, abs=6e-5)
    assert 20 < psnr < 40 and 0.3 < ssim < 1  # a real x4 reconstruction of textured photos, not a blank image
    assert list((trained['work'] / 'tb_logger' / NAME).glob('events.out.tfevents.*'))


def test_auto_resume_continues_iteration_and_learning_rate(trained):
    iters1, iters2 = logged_iters(trained['log1']), logged_iters(trained['log2'])
    assert [it for it, _ in iters1] == list(range(1, 11))
    assert [it for it, _ in iters2] == list(range(11, 21))
    for it, lr in iters1 + iters2:
        assert lr == pytest.approx(expected_lr(it), rel=1e-3), f'iteration {it}'
    models = trained['exp'] / 'models'
    assert re.search(r'Resuming training from epoch: \d+, iter: 10\.', trained['log2'])
    assert f'Loading SRConvNet model from {models / "net_g_10.pth"}' in trained['log2']

    state = load_weights_only(trained['exp'] / 'training_states' / '20.state')
    assert state['iter'] == 20
    assert state['schedulers'][0]['last_epoch'] == 19
    assert state['optimizers'][0]['param_groups'][0]['lr'] == pytest.approx(5e-5)
    # Adam's moments came back from 10.state: every parameter has taken exactly 20 steps
    assert {float(s['step']) for s in state['optimizers'][0]['state'].values()} == {20.0}
    assert (models / 'net_g_20.pth').is_file() and (models / 'net_g_latest.pth').is_file()


def test_test_pipeline_on_the_saved_net_g(trained, tiny_sr_sets):
    work, net_g = trained['work'], trained['exp'] / 'models' / 'net_g_20.pth'
    (work / 'test.yml').write_text(make_test_yaml(tiny_sr_sets, 'test_tiny_x4', net_g))
    ok(run(python_cmd('-m', 'srconvnet_plugin.test', '-opt', 'test.yml'), work))
    results = work / 'results' / 'test_tiny_x4'
    [log] = results.glob('test_test_tiny_x4_*.log')
    [(label, (psnr, ssim))] = logged_validations(log.read_text()).items()
    # same weights, same images: the test pipeline reproduces the training run's validation at iteration 20
    assert (psnr, ssim) == logged_validations(trained['log2'])['20']

    net = SRConvNet(num_feat=16, num_block=1, num_heads=4, num_kernels=4, upscale=4)
    net.load_state_dict(load_weights_only(net_g)['params'])
    net.eval()
    val = tiny_sr_sets['val']
    for name in val.names:
        saved = read_rgb(results / 'visualization' / 'tiny_val' / f'{name}_test_tiny_x4.png')
        lq = img2tensor(read_rgb(val.lq / f'{name}.png').astype(np.float32) / 255., bgr2rgb=True, float32=True)
        with torch.no_grad():
            direct = tensor2img(net(lq[None]))
        assert np.abs(saved.astype(int) - direct.astype(int)).max() <= 1, name


def test_outputs_land_under_the_working_directory_only(trained):
    work = trained['work']
    assert (work / 'experiments' / NAME).is_dir()
    assert (work / 'tb_logger' / NAME).is_dir()
    site_root = Path(basicsr.__file__).resolve().parents[1]  # where basicsr's own __main__ would put them
    for root in (site_root, REPO_ROOT):
        for sub in (f'experiments/{NAME}', f'tb_logger/{NAME}', 'results/test_tiny_x4'):
            assert not (root / sub).exists(), f'output escaped to {root / sub}'


def test_two_rank_gloo_ddp_via_torchrun(tmp_path, tiny_sr_sets):
    name = 'srconvnet_ddp_x4'
    (tmp_path / 'ddp.yml').write_text(
        make_train_yaml(tiny_sr_sets, name, total_iter=4, save_freq=4, val_freq=4, tb_logger=False))
    env = plugin_env()
    env.update(PORT=str(free_port()), PYTHON=python_cmd()[0])
    proc = subprocess.run(['bash', str(REPO_ROOT / 'scripts' / 'dist_train.sh'), '2', 'ddp.yml'], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=240)
    ok(proc)
    exp = tmp_path / 'experiments' / name
    [log] = train_logs(exp)
    text = log.read_text()
    assert 'World size (gpu number): 2' in text
    assert 'Network: DistributedDataParallel - SRConvNet' in text
    assert [it for it, _ in logged_iters(text)] == [1, 2, 3, 4]
    assert '4' in logged_validations(text)  # validation on rank 0 (dist_validation)
    assert load_weights_only(exp / 'training_states' / '4.state')['iter'] == 4
    assert '--launcher pytorch' in (exp / 'ddp.yml').read_text()  # the copied option file records the command


def test_refused_option_file_runs_nothing(tmp_path, monkeypatch, capsys):
    bad = tmp_path / 'downloaded.yml'
    bad.write_text('# looks like an option file\nname: !!python/object/apply:os.system ["touch MARKER"]\n'
                   'model_type: SRModel\nnum_gpu: 0\n')
    message = 'downloaded.yml, line 2, column 7: refusing the YAML tag'
    proc = run(python_cmd('-m', 'srconvnet_plugin.train', '-opt', bad.name), tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-3000:]
    assert 'python/object/apply:os.system' in proc.stderr
    # the test entry point, in-process (its main() is what the srconvnet-test console script calls)
    from srconvnet_plugin import test as test_entry
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr('sys.argv', ['srconvnet-test', '-opt', bad.name])
    with pytest.raises(SystemExit) as exit_info:
        test_entry.main()
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['downloaded.yml']  # no MARKER, no experiments/, results/
