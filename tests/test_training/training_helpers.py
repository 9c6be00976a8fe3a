"""Option files with the training keys (mixed precision, channels-last, clipping, accumulation) for the tests."""
import subprocess
import sys
from pathlib import Path

from helpers import plugin_env, python_cmd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test_stack'))
from stack_options import make_train_yaml  # noqa: E402  (the stack tests' tiny x4 SRConvNet training)


def training_yaml(sets, name, top=(), train=(), dataset=(), **kw):
    """``make_train_yaml`` plus top-level lines ``top``, ``train:`` lines ``train`` and ``datasets: train:`` lines
    ``dataset`` (each a ``'key: value'`` string)."""
    text = make_train_yaml(sets, name, **kw)
    text = text.replace('\ndatasets:\n', ''.join(f'\n{line}' for line in top) + '\n\ndatasets:\n', 1)
    text = text.replace('\ntrain:\n', '\ntrain:\n' + ''.join(f'  {line}\n' for line in train), 1)
    text = text.replace('    name: tiny_lmdb\n', '    name: tiny_lmdb\n' + ''.join(f'    {line}\n' for line in dataset),
                        1)
    return text


def run_train(work, *args, timeout=300):
    """``python -m srconvnet_plugin.train -opt train.yml *args`` in ``work``; the CompletedProcess (text)."""
    return subprocess.run(python_cmd('-m', 'srconvnet_plugin.train', '-opt', 'train.yml', *args), cwd=work,
                          env=plugin_env(), capture_output=True, text=True, timeout=timeout)


def ok(proc):
    assert proc.returncode == 0, f'exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n' \
                                 f'{proc.stderr[-5000:]}'
    return proc
