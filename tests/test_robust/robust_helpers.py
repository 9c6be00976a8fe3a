"""Helpers for the fault tests: training subprocesses that can be watched, stopped and killed."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from helpers import plugin_env, python_cmd
from srconvnet.checkpoints import load_weights_only
from srconvnet.atomic_write import leftover_temp_files

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test_stack'))
from stack_options import make_test_yaml, make_train_yaml  # noqa: E402,F401  (the stack tests' option files)


def train_cmd(*args):
    return python_cmd('-m', 'srconvnet_plugin.train', '-opt', 'train.yml', *args)


def start(work, *args, log_name='out.txt', **kw):
    """Start a training subprocess in ``work``; stdout+stderr go to ``work/log_name``."""
    out = open(work / log_name, 'w')
    return subprocess.Popen(train_cmd(*args), cwd=work, env=plugin_env(), stdout=out, stderr=subprocess.STDOUT,
                            text=True, **kw)


def finish(proc, work, log_name='out.txt', timeout=180):
    """Wait for ``proc``; return (returncode, its output)."""
    proc.wait(timeout=timeout)
    return proc.returncode, (work / log_name).read_text()


def wait_for(cond, proc, timeout=120, what='condition'):
    """Poll ``cond()`` until true; fail if ``proc`` ends first or time runs out."""
    end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f'training ended (exit {proc.returncode}) before {what}')
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.0002)


def temp_files(*folders):
    """Leftovers of interrupted atomic saves in ``folders``."""
    return sorted(Path(p) for f in folders for p in leftover_temp_files(f))


def iters(folder, suffix):
    """Iterations of ``<iter><suffix>`` / ``net_g_<iter><suffix>`` files in ``folder``."""
    out = []
    for p in folder.glob(f'*{suffix}') if folder.is_dir() else []:
        stem = p.name[:-len(suffix)].replace('net_g_', '')
        if stem.isdigit():
            out.append(int(stem))
    return sorted(out)


def assert_all_checkpoints_complete(exp):
    """Every ``.pth`` and ``.state`` under ``exp`` loads (weights-only) and holds finite tensors."""
    n = 0
    for path in sorted(list((exp / 'models').glob('*.pth')) + list((exp / 'training_states').glob('*.state'))):
        obj = load_weights_only(path)
        if path.suffix == '.pth':
            assert all(torch.isfinite(v).all() for v in obj['params'].values()), path
        else:
            assert obj['iter'] == int(path.stem), path
        n += 1
    return n


def kill_mid_save(proc, folder, ignore=()):
    """SIGKILL ``proc`` while it is writing a checkpoint into ``folder``: wait for a new temporary file, freeze the
    process with SIGSTOP, and kill it only if the temporary file still exists (else let it go on and try the next
    save). Returns the name of the temporary file that was left behind."""
    ignore = set(ignore)
    while True:
        wait_for(lambda: any(p.name not in ignore for p in temp_files(folder)), proc, what=f'a save into {folder}')
        os.kill(proc.pid, signal.SIGSTOP)
        live = [p.name for p in temp_files(folder) if p.name not in ignore]
        if live:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return live[0]
        os.kill(proc.pid, signal.SIGCONT)
