"""The inference CLI on real photographs written in each input format, tiling, the no-overwrite rule, and folders
holding files that are not images (every good image is processed, the bad ones listed).

Each expected output is computed here straight from the network (``SRConvNet.forward`` on the decoded pixels), so
the tests check colour order, bit depth, grayscale and alpha handling end to end, not only shapes.
"""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from conftest import REPO_ROOT
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.checkpoints import CheckpointError
from srconvnet.infer import InferenceError, main, run, tile_boxes, upscale_tensor

TINY = dict(num_feat=16, num_block=2, num_heads=4, num_kernels=4)


def tiny_model(upscale=2, seed=0):
    """A random tiny SRConvNet whose attention branch matters (layer_scale ~ N(0, 1), as in the goldens)."""
    torch.manual_seed(seed)
    model = SRConvNet(upscale=upscale, **TINY)
    with torch.no_grad():
        for block in model.blocks:
            block.attention.layer_scale.normal_()
    return model.eval()


def net(model, rgb):
    """The network on an h×w×3 float RGB array in [0, 1] → sh×sw×3 float array, clamped (the oracle)."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32))[None]
        return model(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()


@pytest.fixture(scope='module')
def model():
    return tiny_model()


@pytest.fixture(scope='module')
def weights(model, tmp_path_factory):
    path = tmp_path_factory.mktemp('weights') / 'net_g_x2.pth'
    torch.save({'params': model.state_dict()}, path)
    return path


def astronaut_bgr(h=24, w=28):
    """A textured crop of the astronaut photograph (face and suit), BGR uint8."""
    return cv2.cvtColor(data.astronaut()[90:90 + h, 200:200 + w], cv2.COLOR_RGB2BGR)


def write(path, img):
    assert cv2.imwrite(str(path), img), path
    return path


def upscale_only(tmp_path, src, weights, **kwargs):
    """Run the CLI's library entry on one file; return the decoded (unchanged) output."""
    written, failed = run(src, tmp_path / 'out', weights, device='cpu', progress=False, **kwargs)
    assert len(written) == 1 and failed == []
    return written[0], cv2.imread(str(written[0]), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize('ext', ['png', 'jpg', 'webp'])
def test_rgb_formats(tmp_path, model, weights, ext):
    src = write(tmp_path / f'astronaut.{ext}', astronaut_bgr())
    decoded = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)  # what the network sees (JPEG is lossy)
    path, out = upscale_only(tmp_path, src, weights, tile=0)
    assert path.name == f'astronaut_x2.{ext}'
    assert out.shape == (48, 56, 3) and out.dtype == np.uint8
    expected = net(model, cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float32) / 255) * 255
    expected = cv2.cvtColor(expected, cv2.COLOR_RGB2BGR)
    err = np.abs(out.astype(np.float32) - expected)
    if ext == 'jpg':  # the output is JPEG-compressed (quality 95): compare with the expected image so compressed
        ok, buffer = cv2.imencode('.jpg', np.round(expected).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95])
        err = np.abs(out.astype(np.float32) - cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED))
        assert err.mean() < 0.1 and err.max() <= 4
    else:  # PNG and OpenCV's default WebP are lossless: only the final rounding remains
        assert err.max() <= 0.5 + 1e-3
    # swapping R and B (a classic bug) would be far off
    assert np.abs(out.astype(np.float32) - expected[:, :, ::-1]).mean() > 5 * max(err.mean(), 0.1)


def test_16bit_png_stays_16bit(tmp_path, model, weights):
    rng = np.random.default_rng(0)
    img8 = astronaut_bgr().astype(np.uint16)
    img16 = img8 * 256 + rng.integers(0, 256, img8.shape, dtype=np.uint16)  # real low-order bits
    src = write(tmp_path / 'deep.png', img16)
    _, out = upscale_only(tmp_path, src, weights, tile=0)
    assert out.dtype == np.uint16 and out.shape == (48, 56, 3)
    expected = net(model, cv2.cvtColor(img16, cv2.COLOR_BGR2RGB).astype(np.float32) / 65535)
    expected = cv2.cvtColor(expected, cv2.COLOR_RGB2BGR) * 65535
    assert np.abs(out.astype(np.float64) - expected).max() <= 0.5 + 0.1
    assert np.any(out % 257 != 0)  # not an 8-bit result scaled up


def test_grayscale_in_grayscale_out(tmp_path, model, weights):
    gray = np.ascontiguousarray(data.camera()[100:124, 200:228])
    src = write(tmp_path / 'camera.png', gray)
    _, out = upscale_only(tmp_path, src, weights, tile=0)
    assert out.shape == (48, 56) and out.dtype == np.uint8
    rgb = np.repeat(gray[:, :, None].astype(np.float32) / 255, 3, axis=2)
    expected = cv2.cvtColor(net(model, rgb), cv2.COLOR_RGB2GRAY) * 255
    assert np.abs(out - expected).max() <= 0.5 + 1e-3


@pytest.mark.parametrize('alpha_upsampler', ['model', 'bilinear'])
def test_alpha_upscaled_separately(tmp_path, model, weights, alpha_upsampler):
    bgr = astronaut_bgr()
    alpha = np.ascontiguousarray(data.camera()[100:124, 200:228])  # a real, textured alpha mask
    src = write(tmp_path / 'cutout.png', np.dstack((bgr, alpha)))
    _, out = upscale_only(tmp_path, src, weights, tile=0, alpha_upsampler=alpha_upsampler)
    assert out.shape == (48, 56, 4) and out.dtype == np.uint8
    colour = cv2.cvtColor(net(model, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255),
                          cv2.COLOR_RGB2BGR) * 255
    assert np.abs(out[:, :, :3] - colour).max() <= 0.5 + 1e-3  # colour is not affected by alpha
    a = alpha.astype(np.float32) / 255
    if alpha_upsampler == 'model':
        expected = cv2.cvtColor(net(model, np.repeat(a[:, :, None], 3, axis=2)), cv2.COLOR_RGB2GRAY) * 255
    else:
        expected = cv2.resize(a, (56, 48), interpolation=cv2.INTER_LINEAR) * 255
    assert np.abs(out[:, :, 3] - expected).max() <= 0.5 + 1e-3


def test_folder_and_jpeg_to_png(tmp_path, model, weights):
    folder = tmp_path / 'in'
    folder.mkdir()
    write(folder / 'a.png', astronaut_bgr())
    write(folder / 'b.jpg', astronaut_bgr(20, 20))
    (folder / 'notes.txt').write_text('not an image')
    written, failed = run(folder, tmp_path / 'out', weights, ext='png', device='cpu', progress=False)
    assert sorted(p.name for p in written) == ['a_x2.png', 'b_x2.png'] and failed == []
    assert cv2.imread(str(tmp_path / 'out' / 'b_x2.png')).shape == (40, 40, 3)
    write(folder / 'a.webp', astronaut_bgr())  # a.png and a.webp would both become a_x2.png
    with pytest.raises(InferenceError, match='a_x2.png'):
        run(folder, tmp_path / 'out2', weights, ext='png', device='cpu', progress=False)


@pytest.mark.slow
def test_no_overwrite_without_flag(tmp_path, weights):
    src = write(tmp_path / 'astronaut.png', astronaut_bgr())
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    target = out_dir / 'astronaut_x2.png'
    target.write_bytes(b'precious')
    with pytest.raises(FileExistsError, match='astronaut_x2.png'):
        run(src, out_dir, weights, device='cpu', progress=False)
    assert target.read_bytes() == b'precious'
    # the CLI: exit status 2 and a message naming the file; the file is untouched
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    cmd = [sys.executable, '-m', 'srconvnet.infer', '-i', str(src), '-o', str(out_dir), '--weights',
           str(weights), '--device', 'cpu', '--quiet']
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert 'astronaut_x2.png' in result.stderr and '--overwrite' in result.stderr
    assert target.read_bytes() == b'precious'
    main(cmd[3:] + ['--overwrite'])  # the same CLI in this process (saves a second interpreter start)
    assert cv2.imread(str(target)).shape == (48, 56, 3)
    assert [p.name for p in out_dir.iterdir()] == ['astronaut_x2.png']  # no temporary file left behind


def test_tiles_partition_the_image():
    for h, w, tile, pad in [(50, 37, 16, 4), (16, 16, 16, 8), (7, 100, 32, 32)]:
        cover = np.zeros((h, w), int)
        for (y0, y1, x0, x1), (py0, py1, px0, px1) in tile_boxes(h, w, tile, pad):
            cover[y0:y1, x0:x1] += 1
            assert 0 <= py0 <= y0 and y1 <= py1 <= h and 0 <= px0 <= x0 and x1 <= px1 <= w
            assert y0 - py0 in (pad, y0) and x0 - px0 in (pad, x0)
        assert (cover == 1).all()


@pytest.mark.slow
def test_tiled_matches_whole_image(model):
    rgb = cv2.cvtColor(data.coffee()[100:164, 150:230], cv2.COLOR_RGB2BGR)  # 64×80
    lq = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255)[None]
    whole = upscale_tensor(model, lq, 2, tile=0)
    assert whole.shape == (1, 3, 128, 160)

    def psnr(a):
        return 10 * torch.log10(1 / torch.mean((a - whole)**2)).item()

    tiled = upscale_tensor(model, lq, 2, tile=24, tile_pad=12)  # 3×4 tiles, pad ≥ the 2 blocks' reach (9 px)
    assert tiled.shape == whole.shape
    assert psnr(tiled) > 60
    seams = upscale_tensor(model, lq, 2, tile=24, tile_pad=0)  # no context: zero padding shows at the seams
    assert psnr(seams) < 50
    assert psnr(tiled) > psnr(seams) + 20


def test_tiled_cli_output(tmp_path, model, weights):
    src = write(tmp_path / 'coffee.png', cv2.cvtColor(data.coffee()[100:140, 150:198], cv2.COLOR_RGB2BGR))
    _, whole = upscale_only(tmp_path / 'a', src, weights, tile=0)
    _, tiled = upscale_only(tmp_path / 'b', src, weights, tile=24, tile_pad=12)
    assert tiled.shape == whole.shape == (80, 96, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


def test_scale_auto_and_mismatch(tmp_path):
    path = tmp_path / 'x3.pth'
    model3 = tiny_model(upscale=3)
    torch.save({'params': model3.state_dict()}, path)
    src = write(tmp_path / 'astronaut.png', astronaut_bgr(10, 12))
    _, out = upscale_only(tmp_path, src, path)  # --scale auto
    assert out.shape == (30, 36, 3)
    with pytest.raises(InferenceError, match=r'--scale 4 disagrees with .*x3.pth.*x3'):
        run(src, tmp_path / 'o', path, scale=4, device='cpu', progress=False)
    with pytest.raises(CheckpointError, match='notes.pth'):
        (tmp_path / 'notes.pth').write_text('not a checkpoint')
        run(src, tmp_path / 'o', tmp_path / 'notes.pth', device='cpu', progress=False)


def test_params_ema_preferred_and_authors_checkpoint(tmp_path, model):
    other = tiny_model(seed=1)
    src = write(tmp_path / 'astronaut.png', astronaut_bgr(12, 12))
    rgb = cv2.cvtColor(astronaut_bgr(12, 12), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    expected = cv2.cvtColor(net(model, rgb), cv2.COLOR_RGB2BGR) * 255
    basicsr = tmp_path / 'ema.pth'
    torch.save({'params': other.state_dict(), 'params_ema': model.state_dict()}, basicsr)
    authors = tmp_path / 'model_x2_latest.pt'
    torch.save({'epoch': 3, 'model_state_dict': {'module.' + k: v for k, v in model.state_dict().items()}}, authors)
    for i, ckpt in enumerate((basicsr, authors)):
        _, out = upscale_only(tmp_path / str(i), src, ckpt, tile=0)
        assert np.abs(out - expected).max() <= 0.5 + 1e-3, ckpt


def test_precision(tmp_path, model, weights):
    src = write(tmp_path / 'astronaut.png', astronaut_bgr())
    with pytest.raises(InferenceError, match='fp16 needs --device cuda'):
        run(src, tmp_path / 'o', weights, precision='fp16', device='cpu', progress=False)
    _, fp32 = upscale_only(tmp_path / 'a', src, weights, tile=0)
    _, bf16 = upscale_only(tmp_path / 'b', src, weights, tile=0, precision='bf16')
    err = (fp32.astype(np.float64) - bf16)**2
    assert 10 * np.log10(255**2 / err.mean()) > 30  # bf16 keeps about 3 significant digits


def png_bytes(img):
    ok, png = cv2.imencode('.png', img)
    assert ok
    return png.tobytes()


def test_a_folder_with_bad_images_gives_every_good_one_and_lists_the_bad(tmp_path, weights, capsys):
    """A text file named .png (first by name), a truncated PNG and an empty JPEG between two good images: both good
    ones are written, each bad one is reported as it fails and listed at the end, exit code 1."""
    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / 'a_notes.png').write_text('these are my notes, not a PNG\n')
    write(folder / 'b_good.png', astronaut_bgr())
    (folder / 'c_cut.png').write_bytes(png_bytes(astronaut_bgr(20, 22))[:300])  # a download that stopped
    (folder / 'd_empty.jpg').write_bytes(b'')
    write(folder / 'e_good.jpg', astronaut_bgr(20, 20))
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as done:
        main(['-i', str(folder), '-o', str(out), '--weights', str(weights), '--device', 'cpu', '--quiet'])
    assert done.value.code == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == f'wrote 2 image(s) to {out}'
    bad = {name: 'not an image OpenCV can decode' for name in ('a_notes.png', 'c_cut.png', 'd_empty.jpg')}
    err = [line for line in captured.err.splitlines() if not line.startswith(('[ WARN', '[ERROR'))]  # OpenCV's own
    assert err == ([f'skipped {folder / n}: {why}' for n, why in bad.items()] + ['error: 3 of 5 image(s) failed:'] +
                   [f'  {folder / n}: {why}' for n, why in bad.items()])
    assert sorted(p.name for p in out.iterdir()) == ['b_good_x2.png', 'e_good_x2.jpg']
    # the good images are what a run on each of them alone gives
    for name, written in (('b_good.png', 'b_good_x2.png'), ('e_good.jpg', 'e_good_x2.jpg')):
        _, alone = upscale_only(tmp_path / name, folder / name, weights)
        assert np.array_equal(cv2.imread(str(out / written), cv2.IMREAD_UNCHANGED), alone), name


def test_a_run_that_writes_nothing_leaves_no_output_folder(tmp_path, weights):
    """No image decodes: the output folder (and the missing folders above it) are not left behind; a folder that was
    there before the run stays."""
    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / 'a.png').write_text('not a PNG')
    (folder / 'b.png').write_bytes(png_bytes(astronaut_bgr())[:100])
    written, failed = run(folder, tmp_path / 'new' / 'out', weights, device='cpu', progress=False)
    assert written == [] and [(p.name, why) for p, why in failed] == [('a.png', 'not an image OpenCV can decode'),
                                                                      ('b.png', 'not an image OpenCV can decode')]
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in']
    (tmp_path / 'mine').mkdir()
    assert run(folder, tmp_path / 'mine', weights, device='cpu', progress=False)[0] == []
    assert (tmp_path / 'mine').is_dir()


def test_a_single_bad_file_is_one_failure(tmp_path, weights):
    """The same rule for a file: the command says which file and why, exit code 1, no output folder."""
    (tmp_path / 'photo.png').write_text('not a PNG')
    cmd = [sys.executable, '-m', 'srconvnet.infer', '-i', 'photo.png', '-o', 'out', '--weights', str(weights),
           '--device', 'cpu', '--quiet']
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
                          cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert done.stdout == 'wrote 0 image(s)\n'
    assert done.stderr.splitlines()[-2:] == ['error: 1 of 1 image(s) failed:',
                                             '  photo.png: not an image OpenCV can decode']
    assert 'Traceback' not in done.stderr and not (tmp_path / 'out').exists()
