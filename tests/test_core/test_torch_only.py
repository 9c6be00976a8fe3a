"""The core (package ``srconvnet``) runs where basicsr and the training stack are not installed, and importing it
never imports them.

A fresh interpreter gets an import hook that refuses basicsr and everything only the toolbox needs (as if they were
not installed), then uses every part of the core: the network and its engine, .pth/.safetensors checkpoints and the
authors' layout, conversion, spandrel's real ModelLoader, ONNX export checked by ONNX Runtime, and ``srconvnet-infer``
on a PNG. ``comfyui_check`` goes further: a separate environment with only torch and ComfyUI's requirements.
"""
import json
import subprocess
import sys
import textwrap

import pytest

from helpers import plugin_env

pytestmark = pytest.mark.slow

#: what a model user's environment need not have (the toolbox extra and basicsr's own dependencies; torchvision
#: stays: spandrel needs it, and ComfyUI has it)
TOOLBOX_ONLY = ('basicsr', 'srconvnet_plugin', 'mmengine', 'thop', 'lmdb', 'yaml', 'skimage', 'matplotlib',
                'tensorboard', 'scipy', 'addict')

CORE_MODULES = ('srconvnet', 'srconvnet.archs.srconvnet_arch', 'srconvnet.engine', 'srconvnet.atomic_write',
                'srconvnet.checkpoints', 'srconvnet.convert', 'srconvnet.export', 'srconvnet.infer',
                'srconvnet.spandrel_support')


def blocker(names):
    """A ``sitecustomize.py`` under which the top-level modules ``names`` are not installed, as far as the import
    system can tell: every finder answers "not here" for them (``import`` raises ``ModuleNotFoundError``,
    ``importlib.util.find_spec`` returns None)."""
    return textwrap.dedent(f'''
    import sys
    BLOCKED = {names!r}

    class NotInstalled:
        def __init__(self, finder):
            self.finder = finder
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                return None
            return self.finder.find_spec(name, path, target)
        def __getattr__(self, attr):
            return getattr(self.finder, attr)

    sys.meta_path[:] = [NotInstalled(f) for f in sys.meta_path]
    ''')


USE_THE_CORE = textwrap.dedent('''
    import json, os, subprocess, sys, warnings
    import numpy as np
    import torch
    from srconvnet import SRConvNet
    from srconvnet.checkpoints import load_srconvnet, save_state_dict
    from srconvnet.export import export
    from srconvnet.spandrel_support import install
    import spandrel

    work = sys.argv[1]
    torch.manual_seed(0)
    config = dict(num_feat=16, num_block=1, num_heads=2, num_kernels=2, upscale=3)
    net = SRConvNet(**config).eval()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        y = net(x)  # the engine (no autograd, CPU)
    with torch.enable_grad():
        y_modules = net(x).detach()  # the module forwards
    out = {'shape': list(y.shape), 'engine_vs_modules': float((y - y_modules).abs().max())}

    pth, st, authors = (os.path.join(work, n) for n in ('net.pth', 'net.safetensors', 'authors.pt'))
    save_state_dict(net.state_dict(), pth)
    save_state_dict(net.state_dict(), st)
    torch.save({'model_state_dict': {'module.' + k: v for k, v in net.state_dict().items()}}, authors)
    for path in (pth, st, authors):
        sd, cfg = load_srconvnet(path)
        assert all(torch.equal(sd[k], v) for k, v in net.state_dict().items()), path
        assert cfg['upscale'] == 3 and cfg['num_feat'] == 16, cfg

    subprocess.run([sys.executable, '-m', 'srconvnet.convert', authors, os.path.join(work, 'converted.pth')],
                   check=True, capture_output=True)
    install()
    model = spandrel.ModelLoader().load_from_file(st)
    out['spandrel'] = [model.architecture.id, model.scale, model.model.hyperparameters == net.hyperparameters]

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        export(net, os.path.join(work, 'net.onnx'))
    import onnxruntime
    session = onnxruntime.InferenceSession(os.path.join(work, 'net.onnx'), providers=['CPUExecutionProvider'])
    onnx_y = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    out['onnx_vs_torch'] = float(np.abs(onnx_y - y.numpy()).max())

    import cv2
    cv2.imwrite(os.path.join(work, 'in.png'), (np.random.default_rng(0).random((10, 12, 3)) * 255).astype(np.uint8))
    subprocess.run([sys.executable, '-m', 'srconvnet.infer', '--weights', pth, '-i', os.path.join(work, 'in.png'),
                    '-o', os.path.join(work, 'out')], check=True, capture_output=True)
    out['infer'] = list(cv2.imread(os.path.join(work, 'out', 'in_x3.png')).shape)
    out['toolbox_modules'] = sorted(m for m in sys.modules if m.split('.')[0] in sys.argv[2].split(','))
    print(json.dumps(out))
''')


def _run(code, *args):
    proc = subprocess.run([sys.executable, '-c', code, *map(str, args)], env=plugin_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def test_core_runs_without_basicsr_and_the_training_stack(tmp_path):
    """Every part of the core works with basicsr, torchvision, mmengine, lmdb, yaml, ... refused at import (the hook
    also reaches the ``python -m srconvnet.convert`` / ``srconvnet.infer`` subprocesses through sitecustomize)."""
    (tmp_path / 'site').mkdir()
    (tmp_path / 'site' / 'sitecustomize.py').write_text(blocker(TOOLBOX_ONLY))
    env = plugin_env()
    env['PYTHONPATH'] = f'{tmp_path / "site"}:{env["PYTHONPATH"]}'
    proc = subprocess.run([sys.executable, '-c', USE_THE_CORE, str(tmp_path), ','.join(TOOLBOX_ONLY)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out['shape'] == [1, 3, 27, 33]
    assert out['engine_vs_modules'] < 1e-4
    assert out['spandrel'] == ['SRConvNet', 3, True]
    assert out['onnx_vs_torch'] < 1e-4
    assert out['infer'] == [30, 36, 3]
    assert out['toolbox_modules'] == []


def test_the_blocker_blocks(tmp_path):
    """The hook really refuses basicsr (so the test above can fail): under it, the toolbox's commands say how to
    install the toolbox."""
    (tmp_path / 'sitecustomize.py').write_text(blocker(('basicsr', )))
    env = plugin_env()
    env['PYTHONPATH'] = f'{tmp_path}:{env["PYTHONPATH"]}'
    proc = subprocess.run([sys.executable, '-m', 'srconvnet_plugin.train', '-h'], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr[-3000:]
    assert proc.stderr.startswith('error: srconvnet-train needs the BasicSR toolbox (not installed here: basicsr)')
    assert 'scripts/setup_env.sh' in proc.stderr


@pytest.mark.parametrize('module', CORE_MODULES)
def test_importing_the_core_never_imports_basicsr(module):
    """Even where basicsr is installed (this environment), importing the core leaves it and the toolbox alone."""
    code = (f'import sys, importlib; importlib.import_module({module!r}); '
            'print(sorted({m.split(".")[0] for m in sys.modules} & set(%r)))' % (TOOLBOX_ONLY, ))
    assert _run(code) == '[]'


def test_the_documented_old_names_still_work(tmp_path):
    """``from srconvnet_plugin.spandrel_support import install`` and ``python -m srconvnet_plugin.export``
    (tests/test_install checks every documented module from a wheel)."""
    code = ('from srconvnet_plugin.spandrel_support import install; import srconvnet.spandrel_support as s; '
            'print(install is s.install)')
    assert _run(code) == 'True'
    proc = subprocess.run([sys.executable, '-m', 'srconvnet_plugin.export', '--help'], env=plugin_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and '--weights' in proc.stdout
