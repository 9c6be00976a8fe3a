"""Option files with the training keys (mixed precision, channels-last, clipping, accumulation) for the tests."""
import copy
import subprocess
import sys
from pathlib import Path

import torch

from helpers import plugin_env, python_cmd

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / 'test_stack'), str(TESTS / 'test_robust')]
from stack_options import make_train_yaml  # noqa: E402  (the stack tests' tiny x4 SRConvNet training)


def import_script(name):
    """``scripts/<name>.py`` as a module (scripts/ is put on sys.path to import it by name)."""
    import importlib
    if str(TESTS.parent / 'scripts') not in sys.path:
        sys.path.insert(0, str(TESTS.parent / 'scripts'))
    return importlib.import_module(name)


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


# in-process models (the option dict basicsr's parse_options would hand the model)
NET = dict(type='SRConvNet', num_in_ch=3, num_out_ch=3, num_feat=16, num_block=1, num_heads=4, num_kernels=4,
           upscale=2, img_range=255.)


def make_opt(tmp_path, top=None, train=None, accum_iter=None):
    """A parsed-looking option dict for a CPU x2 training (what basicsr's parse_options would hand the model)."""
    (tmp_path / 'models').mkdir(exist_ok=True)
    (tmp_path / 'training_states').mkdir(exist_ok=True)
    train_set = {'name': 'tiny', 'phase': 'train'}
    if accum_iter is not None:
        train_set['accum_iter'] = accum_iter
    opt = {'name': 'unit', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0, 'is_train': True, 'dist': False,
           'rank': 0, 'world_size': 1, 'network_g': dict(NET), 'datasets': {'train': train_set},
           'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None,
                    'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'training_states')},
           'train': {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 2e-4, 'betas': [0.9, 0.99]},
                     'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 10,
                     'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
                     **(train or {})},
           'logger': {'print_freq': 1, 'save_checkpoint_freq': 10, 'use_tb_logger': False}}
    opt.update(top or {})
    return opt


def build(cls, opt, seed=0, sgd_lr=None):
    """The model; with ``sgd_lr`` its optimizer is plain SGD (basicsr 1.4.2 builds only Adam), whose step is
    ``-lr * grad``, so the gradient the model applied can be read off the parameters."""
    torch.manual_seed(seed)
    model = cls(copy.deepcopy(opt))
    if sgd_lr is not None:
        model.optimizer_g = torch.optim.SGD(model.net_g.parameters(), lr=sgd_lr)
        model.optimizers = [model.optimizer_g]
    return model


def batch(seed, n=2, size=12):
    g = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(n, 3, size, size, generator=g), 'gt': torch.rand(n, 3, 2 * size, 2 * size, generator=g)}
