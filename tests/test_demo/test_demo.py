"""The demo, at reduced size, runs the real pipelines end to end and beats bicubic on real photographs."""
import csv
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from srconvnet_plugin.demo import new_run_dir

pytestmark = pytest.mark.slow

# fewer iterations than the default 400; still enough to beat bicubic (docs/demo.md: margin at the default)
REDUCED_ITERS = 240


def test_demo_trains_validates_tests_and_beats_bicubic(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS='2')
    done = subprocess.run([sys.executable, '-m', 'srconvnet_plugin.demo', '--iters', str(REDUCED_ITERS),
                           '--out', str(tmp_path / 'demo')], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / 'demo' / 'run_001'
    with open(run / 'metrics.csv') as f:
        rows = {r['image']: {k: float(v) for k, v in r.items() if k != 'image'} for r in csv.DictReader(f)}
    assert set(rows) == {'chelsea', 'immunohistochemistry', 'coins', 'mean'}
    mean = rows['mean']
    assert mean['srconvnet_psnr'] > mean['bicubic_psnr'], rows
    assert mean['srconvnet_ssim'] > mean['bicubic_ssim'], rows
    assert 'SRConvNet vs bicubic: +' in done.stdout
    # everything the summary promises is there
    sr_dir = run / 'results' / 'SRConvNet_demo_x2_test' / 'visualization' / 'demo_val'
    assert sorted(p.name for p in sr_dir.iterdir()) == [
        'chelsea_SRConvNet_demo_x2_test.png', 'coins_SRConvNet_demo_x2_test.png',
        'immunohistochemistry_SRConvNet_demo_x2_test.png']
    for name in ('montage.png', 'val_psnr.png', 'train.log', 'test.log'):
        assert (run / name).stat().st_size > 0, name
    assert (run / 'experiments' / 'SRConvNet_demo_x2' / 'models' / 'net_g_latest.pth').is_file()
    assert (run / 'data' / 'train_HR.lmdb' / 'meta_info.txt').is_file()


def test_each_run_gets_a_new_folder_and_earlier_runs_are_kept(tmp_path):
    first = new_run_dir(tmp_path / 'out')
    (tmp_path / 'out' / 'run_001' / 'metrics.csv').write_text('earlier results')
    second = new_run_dir(tmp_path / 'out')
    assert first != second and second.endswith('run_002')
    assert (tmp_path / 'out' / 'run_001' / 'metrics.csv').read_text() == 'earlier results'
