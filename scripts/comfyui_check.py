"""Check the ComfyUI node (comfyui_srconvnet/) against a real ComfyUI server, headless on CPU, through its HTTP API.

    python scripts/comfyui_check.py ../shared/ComfyUI [--timeout 600] [--keep FOLDER]

Run it with the project's environment (it needs torch, opencv, scikit-image and spandrel, and runs ``srconvnet-infer``
for the reference). What it does:

1. ComfyUI's own environment: a virtual environment with torch==2.14.1 and torchvision==0.29.1, then ComfyUI's
   ``requirements.txt`` and ``requests`` (ComfyUI imports it without naming it), all with plain pip. It is built once
   per content of those inputs in ``~/.cache/srconvnet-plugin/comfyui-venv-<key>`` (``SRCONVNET_VENV_CACHE``
   moves the cache) and left as built: what a run adds is uninstalled at its end (and at the next start, if a run
   was killed).
2. The node install, as a user does it: copies of ComfyUI's tree and of this repository in a temporary folder, the
   node folder linked into ``custom_nodes/``, then ``pip install -r requirements.txt`` run from that folder, as
   ComfyUI-Manager runs it. It must only add packages (none of ComfyUI's changes), and basicsr is not among them.
3. ``main.py --cpu --listen 127.0.0.1 --port <free port>``, then over HTTP (``/upload/image``, ``/prompt``,
   ``/history``, ``/view``, the ``/ws`` progress messages) on a 600x400 photograph and a random SRConvNet x4:
   - ComfyUI's "Load Upscale Model" reads SRConvNet files: ``.safetensors``, BasicSR ``.pth`` and the authors' ``.pt``;
   - our node, whole image: equal to ``srconvnet-infer --tile 0`` up to 8-bit rounding (ComfyUI's SaveImage
     truncates, srconvnet-infer rounds: at most 1 level apart);
   - our node, 512-pixel tiles with 32 pixels of overlap: equal to ``srconvnet-infer --tile 512 --tile-pad 32`` up to
     rounding, with one progress message per tile;
   - ComfyUI's own "Upscale Image (using Model)" on the same model (its 512/32 tiling; the difference from our
     whole image is printed, and what it does with an RGBA image);
   - an RGBA image (LoadImage, then "Join Image with Alpha") gives RGBA equal to ``srconvnet-infer``'s;
   - a model that is not SRConvNet gives a node error naming its architecture.
4. The server is stopped whatever happens. One summary line; exit status 0 when every check passed, 1 when one
   failed, 2 when the check could not run (bad arguments, an environment that does not build).
"""
import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODE_DIR = 'comfyui_srconvnet'
#: what ComfyUI's environment holds besides its requirements.txt; part of the cache key
BASE_PACKAGES = ('torch==2.14.1', 'torchvision==0.29.1')
EXTRA_PACKAGES = ('requests', )
#: the random SRConvNet the server runs: small enough for a CPU, x4, layer scales drawn from N(0, 1)
MODEL_CONFIG = dict(num_feat=16, num_block=2, num_heads=4, num_kernels=4, upscale=4)


class CheckFailed(Exception):
    """A check that did not pass."""


class SetupError(Exception):
    """The check could not run."""


def log(message):
    print(f'[comfyui-check] {message}', flush=True)


def run(cmd, timeout, **kwargs):
    """Run ``cmd``; its output is shown only when it fails (a SetupError)."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise SetupError(f'{" ".join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout[-3000:]}'
                         f'{result.stderr[-3000:]}')
    return result.stdout


def remaining(deadline):
    """Seconds left before ``deadline`` (a time.monotonic() value); a CheckFailed when none are."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise CheckFailed('the checks ran out of time (--timeout)')
    return left


# ----------------------------------------------------------------------------------------------------------------
# ComfyUI's environment


def freeze(python):
    return sorted(line.strip() for line in run([python, '-m', 'pip', 'freeze', '--all'], 120).splitlines()
                  if line.strip())


def comfy_venv(comfy, timeout):
    """ComfyUI's environment, built once per content of its inputs; returns its python."""
    requirements = (comfy / 'requirements.txt').read_bytes()
    key = hashlib.sha256(repr((BASE_PACKAGES, EXTRA_PACKAGES)).encode() + requirements).hexdigest()[:16]
    cache = Path(os.environ.get('SRCONVNET_VENV_CACHE', Path.home() / '.cache' / 'srconvnet-plugin'))
    venv = cache / f'comfyui-venv-{key}'
    python = venv / 'bin' / 'python'
    done = venv / '.complete'
    if not done.exists():
        log(f'building ComfyUI\'s environment in {venv} (a few minutes)')
        shutil.rmtree(venv, ignore_errors=True)
        cache.mkdir(parents=True, exist_ok=True)
        run([sys.executable, '-m', 'venv', venv], 300)
        run([python, '-m', 'pip', 'install', *BASE_PACKAGES], timeout)
        run([python, '-m', 'pip', 'install', '-r', comfy / 'requirements.txt', *EXTRA_PACKAGES], timeout)
        done.write_text('\n'.join(freeze(python)) + '\n')  # what it holds, for restore()
    else:
        log(f'reusing ComfyUI\'s environment {venv}')
        restore(python, done.read_text().splitlines())
    return python


def package_name(line):
    """The distribution name of a ``pip freeze`` line (``name==version`` or ``name @ url``)."""
    return line.split('==')[0].split(' @ ')[0].strip()


def restore(python, packages):
    """Uninstall what was installed into the environment after it was built (the node's packages)."""
    names = {package_name(p).lower() for p in packages}
    added = [package_name(p) for p in freeze(python) if package_name(p).lower() not in names]
    if added:
        run([python, '-m', 'pip', 'uninstall', '-y', *added], 300)
    now = freeze(python)
    if now != sorted(packages):
        changed = sorted(set(now) ^ set(packages))
        raise SetupError(f'{python}: ComfyUI\'s cached environment changed ({", ".join(changed[:6])}); remove '
                         f'{Path(python).parents[1]} to rebuild it')
    return added


def has_module(python, name):
    code = f'import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)'
    return subprocess.run([python, '-c', code]).returncode == 0


# ----------------------------------------------------------------------------------------------------------------
# the trees


def copy_repo(dest):
    """A copy of this repository's files (git's tracked and untracked-not-ignored ones when it is a checkout)."""
    try:
        listed = run(['git', '-C', REPO, 'ls-files', '-co', '--exclude-standard', '-z'], 60).split('\0')
    except (SetupError, FileNotFoundError):
        listed = None
    if listed is None:
        shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns('.git', '.venv', 'build', '*.egg-info',
                                                                  '__pycache__', 'results', 'experiments'))
        return
    for name in filter(None, listed):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def copy_comfy(comfy, dest):
    """ComfyUI's tree without its git folder and without what a server run writes or reads at its top level."""
    top_level = {'.git', 'user', 'output', 'input', 'temp', 'custom_nodes', 'models'}

    def ignore(folder, names):
        return [n for n in names if n == '__pycache__' or (Path(folder) == comfy and n in top_level)]

    shutil.copytree(comfy, dest, ignore=ignore)
    for folder, _, names in os.walk(dest):  # CI's copy of shared/ has no write bits; the server writes in its tree
        for path in [folder] + [os.path.join(folder, n) for n in names]:
            os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
    for sub in ('custom_nodes', 'input', 'output', 'models/upscale_models'):
        (dest / sub).mkdir(parents=True, exist_ok=True)


def install_node(python, comfy_copy, repo_copy, deadline):
    """Link the node folder into custom_nodes and ``pip install -r requirements.txt`` from there."""
    link = comfy_copy / 'custom_nodes' / NODE_DIR
    link.symlink_to(repo_copy / NODE_DIR, target_is_directory=True)
    run([python, '-m', 'pip', 'install', '-r', 'requirements.txt'], remaining(deadline), cwd=link)
    return link


# ----------------------------------------------------------------------------------------------------------------
# files the server reads


def write_inputs(folder):
    """The SRConvNet checkpoints (.safetensors and BasicSR .pth), a model of another architecture, the photograph
    and an RGBA image; returns their paths."""
    import cv2
    import numpy as np
    import torch
    from skimage import data
    from spandrel.architectures.Compact import Compact

    from srconvnet.archs.srconvnet_arch import SRConvNet
    from srconvnet.checkpoints import save_state_dict

    torch.manual_seed(0)
    net = SRConvNet(**MODEL_CONFIG)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith('layer_scale'):
                p.normal_()
    files = {'safetensors': folder / 'SRConvNet_x4_random.safetensors', 'pth': folder / 'SRConvNet_x4_random.pth',
             'authors': folder / 'model_x4_random_authors.pt', 'other': folder / 'Compact_x4_random.safetensors',
             'photo': folder / 'coffee.png', 'rgba': folder / 'rgba.png'}
    save_state_dict(net.state_dict(), files['safetensors'])
    save_state_dict(net.state_dict(), files['pth'])
    # the authors' training checkpoint: DataParallel's module. prefixes under model_state_dict, beside the epoch
    torch.save({'epoch': 1, 'model_state_dict': {f'module.{k}': v for k, v in net.state_dict().items()}},
               files['authors'])
    save_state_dict(Compact(num_feat=16, num_conv=2, upscale=4).state_dict(), files['other'])
    photo = data.coffee()  # 400x600 RGB
    assert photo.shape == (400, 600, 3), photo.shape
    cv2.imwrite(str(files['photo']), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    crop = cv2.cvtColor(photo[100:148, 200:264], cv2.COLOR_RGB2BGR)
    yy, xx = np.mgrid[0:48, 0:64]
    alpha = np.clip(255 * (xx / 63 * 0.7 + 0.3 * (yy % 16 < 8)), 0, 255).astype(np.uint8)
    cv2.imwrite(str(files['rgba']), np.dstack([crop, alpha]))
    return files


def reference(image, weights, out_dir, tile, tile_pad, deadline):
    """``srconvnet-infer``'s output for ``image`` (as an array read unchanged, BGR(A))."""
    import cv2
    out_dir.mkdir(parents=True, exist_ok=True)
    run([sys.executable, '-m', 'srconvnet.infer', '-i', image, '-o', out_dir, '--weights', weights, '--tile',
         str(tile), '--tile-pad', str(tile_pad), '--device', 'cpu', '--quiet'], remaining(deadline),
        env={**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(REPO), os.environ.get('PYTHONPATH')]))})
    return cv2.imread(str(out_dir / f'{image.stem}_x4.png'), cv2.IMREAD_UNCHANGED)


# ----------------------------------------------------------------------------------------------------------------
# the server


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server:
    """ComfyUI's ``main.py --cpu`` on loopback; a context manager that always stops it."""

    def __init__(self, python, comfy_copy, log_path):
        self.python, self.comfy, self.log_path = python, comfy_copy, log_path
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.process = None

    def __enter__(self):
        self.log_file = open(self.log_path, 'wb')
        self.process = subprocess.Popen([self.python, 'main.py', '--cpu', '--listen', '127.0.0.1', '--port',
                                         str(self.port)], cwd=self.comfy, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def __exit__(self, *exc):
        if self.process.poll() is None:  # the server's own process group (start_new_session): it and nothing else
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        self.log_file.close()

    def log_tail(self, lines=30):
        return '\n'.join(Path(self.log_path).read_text(errors='replace').splitlines()[-lines:])

    def request(self, path, data=None, headers=None, timeout=60):
        req = urllib.request.Request(self.url + path, data=data, headers=headers or {})
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.read()

    def json(self, path, payload=None, timeout=60):
        data = None if payload is None else json.dumps(payload).encode()
        headers = {} if payload is None else {'Content-Type': 'application/json'}
        return json.loads(self.request(path, data, headers, timeout))

    def wait_ready(self, deadline):
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SetupError(f'ComfyUI exited with status {self.process.returncode}:\n{self.log_tail()}')
            try:
                self.json('/system_stats', timeout=5)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(1)
        raise SetupError(f'ComfyUI did not answer /system_stats in time:\n{self.log_tail()}')

    def upload(self, path):
        boundary = uuid.uuid4().hex
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{path.name}"\r\n'
                'Content-Type: image/png\r\n\r\n').encode() + path.read_bytes() + (
                    f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\ntrue\r\n'
                    f'--{boundary}--\r\n').encode()
        answer = json.loads(self.request('/upload/image', body,
                                         {'Content-Type': f'multipart/form-data; boundary={boundary}'}))
        return answer['name']

    def execute(self, graph, client_id, deadline):
        """Queue ``graph``; wait until it ends; returns its history entry (``status``, ``outputs``)."""
        try:
            prompt_id = self.json('/prompt', {'prompt': graph, 'client_id': client_id})['prompt_id']
        except urllib.error.HTTPError as e:  # the graph was refused before it ran (e.g. an unknown node)
            raise CheckFailed(f'/prompt refused the graph: {e.read().decode(errors="replace")[:2000]}') from None
        while time.monotonic() < deadline:
            entry = self.json(f'/history/{prompt_id}').get(prompt_id)
            if entry and entry.get('status', {}).get('status_str') in ('success', 'error'):
                return {**entry, 'prompt_id': prompt_id}
            if self.process.poll() is not None:
                raise SetupError(f'ComfyUI exited during a prompt:\n{self.log_tail()}')
            time.sleep(0.5)
        raise CheckFailed('a prompt did not finish within the time limit')

    def image(self, entry, node):
        """The first image that the SaveImage node ``node`` wrote, read unchanged (BGR(A), 8-bit)."""
        import cv2
        import numpy as np
        saved = entry['outputs'][node]['images'][0]
        query = urllib.parse.urlencode({k: saved[k] for k in ('filename', 'subfolder', 'type')})
        return cv2.imdecode(np.frombuffer(self.request(f'/view?{query}'), np.uint8), cv2.IMREAD_UNCHANGED)


def node_error(entry):
    """``(node_type, exception_type, exception_message)`` of a failed prompt, or None."""
    for kind, message in entry.get('status', {}).get('messages', []):
        if kind == 'execution_error':
            return message.get('node_type'), message.get('exception_type'), message.get('exception_message')
    return None


def succeeded(entry, what):
    if entry['status']['status_str'] != 'success':
        raise CheckFailed(f'{what}: the prompt failed: {node_error(entry)}')
    return entry


# ----------------------------------------------------------------------------------------------------------------
# progress messages: a websocket listener inside ComfyUI's environment (it has aiohttp, ComfyUI's own server)

LISTENER_CODE = r'''
import asyncio, json, sys
import aiohttp

async def main(url, out):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            print("connected", flush=True)
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    with open(out, "a") as f:
                        f.write(msg.data + "\n")

asyncio.run(main(sys.argv[1], sys.argv[2]))
'''


class ProgressListener:
    def __init__(self, python, server, client_id, out):
        self.cmd = [python, '-c', LISTENER_CODE, f'ws://127.0.0.1:{server.port}/ws?clientId={client_id}', out]
        self.out = Path(out)

    def __enter__(self):
        self.process = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.process.stdout.readline()
        if 'connected' not in line:
            raise SetupError(f'the websocket listener did not connect: {line}{self.process.stdout.read()[-2000:]}')
        return self

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(30)

    def progress(self, entry, node, wait=10):
        """The ``(value, max)`` of the progress messages of the node ``node`` in the prompt of ``entry``, once the
        prompt's ``executing`` message for no node (its end) has arrived."""
        deadline = time.monotonic() + wait
        while True:
            lines = self.out.read_text().splitlines() if self.out.exists() else []
            messages = []
            for line in lines:
                try:
                    messages.append(json.loads(line))
                except json.JSONDecodeError:  # a line still being written
                    pass
            mine = [m['data'] for m in messages if m.get('data', {}).get('prompt_id') == entry['prompt_id']]
            if any(m.get('node', '') is None for m in mine) or time.monotonic() > deadline:
                return [(m['value'], m['max']) for m in mine if 'value' in m and m.get('node') == node]
            time.sleep(0.2)


# ----------------------------------------------------------------------------------------------------------------
# the checks


def graph(image_name, model_name, upscaler, upscaler_inputs=None, rgba=False, prefix='check'):
    nodes = {
        'load_image': {'class_type': 'LoadImage', 'inputs': {'image': image_name}},
        'load_model': {'class_type': 'UpscaleModelLoader', 'inputs': {'model_name': model_name}},
        'upscale': {'class_type': upscaler, 'inputs': {'upscale_model': ['load_model', 0],
                                                        'image': ['join' if rgba else 'load_image', 0],
                                                        **(upscaler_inputs or {})}},
        'save': {'class_type': 'SaveImage', 'inputs': {'images': ['upscale', 0], 'filename_prefix': prefix}},
    }
    if rgba:
        nodes['join'] = {'class_type': 'JoinImageWithAlpha', 'inputs': {'image': ['load_image', 0],
                                                                          'alpha': ['load_image', 1]}}
    return nodes


def max_diff(a, b, what):
    import numpy as np
    if a is None or b is None or a.shape != b.shape:
        raise CheckFailed(f'{what}: shapes differ: {getattr(a, "shape", None)} vs {getattr(b, "shape", None)}')
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


def checks(python, server, files, work, deadline):
    """Run every check against the started server; returns the summary's parts."""
    import cv2
    results = []
    client_id = uuid.uuid4().hex
    info = server.json('/object_info/SRConvNetUpscale').get('SRConvNetUpscale')
    if not info:
        raise CheckFailed(f'the server does not know SRConvNetUpscale (IMPORT FAILED?):\n{server.log_tail()}')
    photo, rgba = server.upload(files['photo']), server.upload(files['rgba'])
    st, pth, other = files['safetensors'].name, files['pth'].name, files['other'].name

    with ProgressListener(python, server, client_id, work / 'ws.jsonl') as listener:
        whole = succeeded(server.execute(graph(photo, st, 'SRConvNetUpscale', prefix='ours_whole'), client_id,
                                         deadline), 'our node, whole image')
        tiled = succeeded(server.execute(graph(photo, pth, 'SRConvNetUpscale', {'tile_size': 512, 'tile_overlap': 32},
                                               prefix='ours_tiled'), client_id, deadline), 'our node, tiles')
        progress = listener.progress(tiled, 'upscale')
    builtin = succeeded(server.execute(graph(photo, files['authors'].name, 'ImageUpscaleWithModel', prefix='builtin'),
                                       client_id, deadline), 'ComfyUI\'s node, the authors\' layout')
    builtin_rgba = server.execute(graph(rgba, st, 'ImageUpscaleWithModel', rgba=True, prefix='builtin_rgba'),
                                  client_id, deadline)
    ours_rgba = succeeded(server.execute(graph(rgba, st, 'SRConvNetUpscale', rgba=True, prefix='ours_rgba'),
                                         client_id, deadline), 'our node, RGBA')
    refused = server.execute(graph(photo, other, 'SRConvNetUpscale', prefix='refused'), client_id, deadline)

    ref_whole = reference(files['photo'], files['safetensors'], work / 'ref_whole', 0, 32, deadline)
    ref_tiled = reference(files['photo'], files['safetensors'], work / 'ref_tiled', 512, 32, deadline)
    ref_rgba = reference(files['rgba'], files['safetensors'], work / 'ref_rgba', 0, 32, deadline)

    ours = server.image(whole, 'save')
    if ours.shape != (1600, 2400, 3):
        raise CheckFailed(f'our node, whole image: output {ours.shape}, expected 1600x2400 RGB')
    d = max_diff(ours, ref_whole, 'our node vs srconvnet-infer --tile 0')
    if d > 1:
        raise CheckFailed(f'our node (whole image) differs from srconvnet-infer --tile 0 by {d}/255')
    results.append(f'ours whole = srconvnet-infer --tile 0 within {d}/255')

    d = max_diff(server.image(tiled, 'save'), ref_tiled, 'our node tiled vs srconvnet-infer --tile 512')
    if d > 1:
        raise CheckFailed(f'our node (512/32 tiles) differs from srconvnet-infer --tile 512 --tile-pad 32 by {d}/255')
    if progress != [(1, 2), (2, 2)]:
        raise CheckFailed(f'our node (2 tiles): progress messages {progress}, expected [(1, 2), (2, 2)]')
    results.append(f'ours 512/32 tiles (.pth) = srconvnet-infer --tile 512 within {d}/255, progress {progress}')

    d = max_diff(server.image(builtin, 'save'), ours, 'ComfyUI\'s node vs ours')
    results.append(f'ComfyUI\'s node (512/32, the authors\' .pt) vs ours whole: {d}/255')
    error = node_error(builtin_rgba)  # what ComfyUI's own node does with RGBA: reported, not checked
    results.append(f'ComfyUI\'s node on RGBA: {builtin_rgba["status"]["status_str"]}'
                   + (f' ({error[1]}: {error[2].strip().splitlines()[0]})' if error else ''))

    out = server.image(ours_rgba, 'save')
    if out.ndim != 3 or out.shape[2] != 4:
        raise CheckFailed(f'our node, RGBA: output {out.shape}, expected 4 channels')
    d = max_diff(out, ref_rgba, 'our node RGBA vs srconvnet-infer')
    if d > 1:
        raise CheckFailed(f'our node (RGBA) differs from srconvnet-infer by {d}/255')
    results.append(f'RGBA = srconvnet-infer within {d}/255')

    error = node_error(refused)
    if refused['status']['status_str'] != 'error' or not error or 'not SRConvNet' not in (error[2] or ''):
        raise CheckFailed(f'a Compact model in our node: expected a node error saying "not SRConvNet", got '
                          f'{refused["status"]["status_str"]} {error}')
    results.append(f'Compact refused: {error[1]}: {error[2].strip()}')
    cv2.imwrite(str(work / 'ours_whole.png'), ours)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('comfyui', type=Path, help='a ComfyUI source tree (main.py, requirements.txt)')
    parser.add_argument('--timeout', type=int, default=600,
                        help='seconds for the install, the server and the checks (default 600); building ComfyUI\'s '
                        'environment the first time has its own limit of 1800 s')
    parser.add_argument('--keep', type=Path, help='keep the work folder (server log, images) here')
    args = parser.parse_args(argv)
    comfy = args.comfyui.resolve()
    if not (comfy / 'main.py').is_file() or not (comfy / 'requirements.txt').is_file():
        print(f'comfyui-check: error: {args.comfyui} is not a ComfyUI tree (no main.py / requirements.txt)')
        return 2
    start = time.monotonic()
    # a SIGTERM (a CI timeout, kill) unwinds like an exception, so the server is stopped and the venv restored
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        python = comfy_venv(comfy, 1800)
        baseline = (Path(python).parents[1] / '.complete').read_text().splitlines()
    except (SetupError, subprocess.TimeoutExpired) as e:
        print(f'comfyui-check: error: ComfyUI\'s environment: {e}')
        return 2
    deadline = time.monotonic() + args.timeout
    work = Path(tempfile.mkdtemp(prefix='comfyui-check-'))
    status, summary = 2, []
    try:
        repo_copy, comfy_copy = work / 'srconvnet-plugin', work / 'ComfyUI'
        copy_repo(repo_copy)
        copy_comfy(comfy, comfy_copy)
        log(f'pip install -r requirements.txt in custom_nodes/{NODE_DIR} (a link to a copy of this repository)')
        install_node(python, comfy_copy, repo_copy, deadline)
        after = freeze(python)
        added = sorted(set(after) - set(baseline))
        changed = sorted(set(baseline) - set(after))
        if changed:
            raise CheckFailed(f'the node install changed ComfyUI\'s packages: {", ".join(changed)} -> '
                              f'{", ".join(added)}')
        if has_module(python, 'basicsr'):
            raise CheckFailed(f'the node install brought basicsr: {", ".join(added)}')
        summary.append(f'node install added {", ".join(map(package_name, added))}; no basicsr')
        files = write_inputs(comfy_copy / 'models' / 'upscale_models')
        log('starting ComfyUI (--cpu, 127.0.0.1)')
        with Server(python, comfy_copy, work / 'server.log') as server:
            server.wait_ready(min(deadline, time.monotonic() + 180))
            log(f'ComfyUI answers on {server.url}; running the graphs')
            summary += checks(python, server, files, work, deadline)
        status = 0
    except CheckFailed as e:
        status = 1
        summary.append(f'FAILED: {e}')
    except (SetupError, subprocess.TimeoutExpired) as e:
        summary.append(f'ERROR: {e}')
    finally:
        try:
            restore(python, baseline)
        except SetupError as e:
            summary.append(f'(cleanup: {e})')
        if args.keep:
            shutil.copytree(work, args.keep, dirs_exist_ok=True, symlinks=True,
                            ignore=shutil.ignore_patterns('ComfyUI', 'srconvnet-plugin'))
        shutil.rmtree(work, ignore_errors=True)
    word = {0: 'passed', 1: 'FAILED', 2: 'ERROR'}[status]
    print(f'comfyui-check: {word} in {time.monotonic() - start:.0f} s: ' + '; '.join(summary))
    return status


if __name__ == '__main__':
    sys.exit(main())
