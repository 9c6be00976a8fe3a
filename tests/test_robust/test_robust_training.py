"""Training faults on real CPU training runs (subprocesses of ``python -m srconvnet_plugin.train``).

* SIGKILL at several points, including in the middle of writing a ``.pth`` and a ``.state``: every checkpoint left
  on disk is complete, and ``--auto_resume`` continues from the newest complete state to the end;
* SIGTERM / SIGINT (Ctrl-C to the whole process group, DataLoader worker included): a resumable state is saved;
* a NaN/inf loss stops training and keeps the last good checkpoint;
* a full disk (``RLIMIT_FSIZE``: writes fail with EFBIG, as on a full or over-quota disk) fails loudly and leaves the
  previous checkpoint byte for byte.
"""
import os
import re
import resource
import signal

import pytest

from robust_helpers import (assert_all_checkpoints_complete, finish, iters, kill_mid_save, make_train_yaml, start,
                            temp_files, wait_for)
from srconvnet.checkpoints import load_weights_only

pytestmark = pytest.mark.slow

ITER = re.compile(r'\[epoch:\s*\d+, iter:\s*([\d,]+),')
RESUMED = re.compile(r'Resuming training from epoch: \d+, iter: (\d+)\.')


def logged_iters(text):
    return [int(i.replace(',', '')) for i in ITER.findall(text)]


def setup_work(tmp_path, sets, name, **kw):
    kw.setdefault('tb_logger', False)
    kw.setdefault('val_freq', 1000)
    (tmp_path / 'train.yml').write_text(make_train_yaml(sets, name, **kw))
    exp = tmp_path / 'experiments' / name
    return exp, exp / 'models', exp / 'training_states'


def test_sigkill_at_any_moment_then_auto_resume_to_the_end(tmp_path, tiny_sr_sets):
    total = 16
    exp, models, states = setup_work(tmp_path, tiny_sr_sets, 'kill', total_iter=total, save_freq=1)
    kills = []

    # 1. mid-save of a network file, 2. mid-save of a training state, 3. between saves (after a given iteration)
    for n, how in enumerate(['models', 'training_states', 'iteration']):
        before = {p.name for p in temp_files(models, states)}
        proc = start(tmp_path, '--auto_resume', log_name=f'out{n}.txt')
        if how == 'iteration':
            start_at = max(iters(states, '.state'), default=0)
            wait_for(lambda: len(iters(states, '.state')) and max(iters(states, '.state')) >= start_at + 3, proc,
                     what='three more iterations')
            proc.kill()
            proc.wait(timeout=30)
            left = None
        else:  # (after two iterations of this process, so that there is something to resume from)
            start_at = max(iters(states, '.state'), default=0)
            wait_for(lambda: len(iters(states, '.state')) and max(iters(states, '.state')) >= start_at + 2, proc,
                     what='two more iterations')
            left = kill_mid_save(proc, exp / how, ignore=before)
        kills.append((how, left))
        assert proc.returncode == -signal.SIGKILL
        if left is not None:  # the kill landed inside a save: its temporary file is there, its target is not touched
            assert left in {p.name for p in temp_files(exp / how)}
        assert assert_all_checkpoints_complete(exp) >= 1

    newest = max(i for i in iters(states, '.state') if i in iters(models, '.pth'))
    proc = start(tmp_path, '--auto_resume', log_name='final.txt')
    rc, out = finish(proc, tmp_path, 'final.txt')
    assert rc == 0, out[-4000:]
    # the run after each mid-save kill removed the temporary file left behind, and said so
    for n, (how, left) in enumerate(kills[:2]):
        assert f'removed 1 incomplete temporary file(s) of an interrupted save in {exp / how}: {left}' in \
            (tmp_path / f'out{n + 1}.txt').read_text()
    [resumed] = RESUMED.findall(out)
    assert int(resumed) == newest  # the newest complete state and its network
    assert logged_iters(out) == list(range(int(resumed) + 1, total + 1))
    assert temp_files(models, states) == []
    assert (models / 'net_g_latest.pth').is_file() and load_weights_only(states / f'{total}.state')['iter'] == total
    assert assert_all_checkpoints_complete(exp) >= total
    assert [k for k, left in kills if left] == ['models', 'training_states'], kills


def test_sigterm_saves_a_resumable_state_and_auto_resume_continues(tmp_path, tiny_sr_sets):
    exp, models, states = setup_work(tmp_path, tiny_sr_sets, 'term', total_iter=1000, save_freq=1000)
    proc = start(tmp_path)
    log = tmp_path / 'out.txt'
    wait_for(lambda: len(logged_iters(log.read_text())) >= 3, proc, what='iteration 3')
    proc.send_signal(signal.SIGTERM)
    rc, out = finish(proc, tmp_path)
    assert rc == 128 + signal.SIGTERM, out[-3000:]
    m = re.search(r'SIGTERM: stopped after iteration (\d+); saved (\S+\.state)', out)
    assert m, out[-3000:]
    stopped = int(m[1])
    assert max(logged_iters(out)) <= stopped and iters(states, '.state') == [stopped]
    assert load_weights_only(m[2])['iter'] == stopped and iters(models, '.pth') == [stopped]

    proc = start(tmp_path, '--auto_resume', '--force_yml', f'train:total_iter={stopped + 2}', log_name='out2.txt')
    rc, out2 = finish(proc, tmp_path, 'out2.txt')
    assert rc == 0, out2[-3000:]
    assert RESUMED.findall(out2) == [str(stopped)]
    assert logged_iters(out2) == [stopped + 1, stopped + 2]


def test_ctrl_c_to_the_process_group_with_a_loader_worker(tmp_path, tiny_sr_sets):
    """A terminal's Ctrl-C sends SIGINT to the DataLoader worker too; the state is still saved."""
    exp, models, states = setup_work(tmp_path, tiny_sr_sets, 'int', total_iter=1000, save_freq=1000)
    text = (tmp_path / 'train.yml').read_text().replace('num_worker_per_gpu: 0', 'num_worker_per_gpu: 1')
    (tmp_path / 'train.yml').write_text(text)
    proc = start(tmp_path, start_new_session=True)
    log = tmp_path / 'out.txt'
    wait_for(lambda: len(logged_iters(log.read_text())) >= 2, proc, what='iteration 2')
    os.killpg(proc.pid, signal.SIGINT)
    rc, out = finish(proc, tmp_path)
    assert rc == 128 + signal.SIGINT, out[-3000:]
    stopped = int(re.search(r'SIGINT: stopped after iteration (\d+)', out)[1])
    assert load_weights_only(states / f'{stopped}.state')['iter'] == stopped
    assert assert_all_checkpoints_complete(exp) == 2


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny_sr_sets):
    # a real divergence: the learning rate is multiplied by 1e30 after iteration 3, the weights blow up to inf
    exp, models, states = setup_work(tmp_path, tiny_sr_sets, 'nan', total_iter=12, save_freq=3, milestones=(3, 100))
    text = (tmp_path / 'train.yml').read_text().replace('gamma: 0.5', 'gamma: !!float 1e30')
    (tmp_path / 'train.yml').write_text(text)
    rc, out = finish(start(tmp_path), tmp_path)
    assert rc == 1, out[-3000:]
    m = re.search(r'iteration (\d+): non-finite training loss \((.*?)\); training stopped', out)
    assert m, out[-3000:]
    assert 3 < int(m[1]) < 6 and re.search(r'l_pix = (nan|inf)|non-finite parameters', m[2])
    assert f'Last good checkpoint: {states / "3.state"}' in out
    assert iters(states, '.state') == [3] and iters(models, '.pth') == [3]
    assert not (models / 'net_g_latest.pth').exists()
    assert assert_all_checkpoints_complete(exp) == 2  # finite weights


def _limit_file_size(limit):

    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_full_disk_fails_loudly_and_keeps_the_previous_checkpoint(tmp_path, tiny_sr_sets):
    exp, models, states = setup_work(tmp_path, tiny_sr_sets, 'full', total_iter=2, save_freq=2)
    rc, out = finish(start(tmp_path), tmp_path)
    assert rc == 0, out[-3000:]
    latest = (models / 'net_g_latest.pth').read_bytes()
    size = len(latest)
    # resume to iteration 4 saving only at the end: the new net_g_latest.pth cannot be written past 20 kB
    proc = start(tmp_path, '--auto_resume', '--force_yml', 'train:total_iter=4', 'logger:save_checkpoint_freq=100',
                 log_name='out2.txt', preexec_fn=_limit_file_size(20_000))
    rc, out2 = finish(proc, tmp_path, 'out2.txt')
    assert size > 20_000
    assert rc == 1, out2[-3000:]
    assert 'could not save the network (OSError: [Errno 27] File too large)' in out2, out2[-3000:]
    assert 'Just ignore it' in out2  # what basicsr alone would have done: log, and go on without a checkpoint
    assert (models / 'net_g_latest.pth').read_bytes() == latest  # the previous file, byte for byte
    assert temp_files(models, states) == []
    assert assert_all_checkpoints_complete(exp) == 3
