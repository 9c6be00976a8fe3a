"""Upscale your own images with a trained SRConvNet, whole or in tiles.

Usage::

    python -m srconvnet.infer -i photos/ -o results/ --weights experiments/pretrained_models/SRConvNet_x4.pth

``-i`` takes an image file or a folder (its PNG, JPEG, WebP, BMP and TIFF files, not recursive). Images are read with
OpenCV's ``IMREAD_UNCHANGED``: 8- and 16-bit images keep their bit depth (a 16-bit PNG gives a 16-bit PNG), grayscale
images are replicated to RGB for the network and converted back, and an alpha channel is upscaled separately (by the
network on a grey replica, as Real-ESRGAN does, or bilinearly), then re-attached (JPEG outputs drop it, with a
warning). The output is
``OUTDIR/<name>_<suffix>.<ext>``; an existing output stops the run before any work unless ``--overwrite`` is given.
Files are written to a temporary name and renamed, so an interrupted run never leaves a half-written image. An image
that cannot be upscaled (OpenCV cannot decode it, say) is reported and skipped, the others are still processed, and
the run ends with the list of failures (file and reason) and exit code 1; the output folder is made when the first
image is written, so a run that writes nothing leaves none behind.

The scale and architecture are read from the checkpoint's tensor shapes; ``--scale`` only checks them. How tiling
interacts with the network's image-wide operations: docs/inference.md, "Tiling and the network's image-wide
operations".
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

from srconvnet.launch import require_infer

require_infer(__name__)  # the 'infer' extra, before OpenCV is imported
import cv2  # noqa: E402
from tqdm import tqdm  # noqa: E402

from srconvnet.atomic_write import atomic_write
from srconvnet.checkpoints import CheckpointError
# the model loading is torch-only (srconvnet.loading, shared with the export); its names stay importable from here
from srconvnet.loading import InferenceError, load_model  # noqa: F401
# the tiler lives in tiling.py (torch only, shared with the ComfyUI node); its names stay importable from here
from srconvnet.tiling import (ALPHA_UPSAMPLERS, DEFAULT_TILE, DEFAULT_TILE_PAD, tile_boxes, upscale_alpha,  # noqa: F401
                              upscale_tensor)

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff')
OUTPUT_EXTENSIONS = ('png', 'jpg', 'webp', 'tif')
PRECISIONS = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


# ----------------------------------------------------------------------------------------------------------------
# model


def resolve_device(device):
    """``'auto'`` → cuda when available, else cpu; checks that an explicit cuda device exists."""
    if device in (None, 'auto'):
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    device = torch.device(device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise InferenceError('--device cuda was requested but torch sees no CUDA device')
    return device


def check_precision(precision, device):
    """Return the autocast dtype for ``precision`` (None for fp32); fp16 is CUDA-only."""
    if precision not in PRECISIONS:
        raise InferenceError(f'--precision must be one of {sorted(PRECISIONS)}, got {precision!r}')
    if precision == 'fp16' and torch.device(device).type != 'cuda':
        raise InferenceError('--precision fp16 needs --device cuda (CPU half-precision convs are slow or missing); '
                             'use bf16 or fp32 on CPU')
    return PRECISIONS[precision]


# ----------------------------------------------------------------------------------------------------------------
# network on arrays


def upscale_rgb(model, rgb, scale, device, **kwargs):
    """Upscale an h×w×3 float32 RGB array in [0, 1]; returns an sh×sw×3 float32 array in [0, 1]."""
    lq = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).unsqueeze(0).to(device)
    return upscale_tensor(model, lq, scale, **kwargs)[0].permute(1, 2, 0).numpy()


# ----------------------------------------------------------------------------------------------------------------
# images


def read_image(path):
    """Read ``path`` unchanged; returns ``(array, max_value)`` with the array h×w, h×w×3 (BGR) or h×w×4 (BGRA)."""
    path = os.fspath(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)  # cv2.imread cannot open non-ASCII paths on every platform
    except OSError as err:
        raise InferenceError(f'{path}: cannot be read ({err})') from err
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise InferenceError(f'{path}: not an image OpenCV can decode')
    if img.dtype == np.uint8:
        max_value = 255
    elif img.dtype == np.uint16:
        max_value = 65535
    else:
        raise InferenceError(f'{path}: {img.dtype} images are not supported (8- or 16-bit only)')
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (3, 4))):
        raise InferenceError(f'{path}: unsupported channel layout {img.shape}')
    return img, max_value


def upscale_image(model, img, max_value, scale, device, alpha_upsampler='model', **kwargs):
    """Upscale an image as read by ``read_image``; returns an array of the same kind (channels, dtype)."""
    img_f = img.astype(np.float32) / max_value
    if img.ndim == 2:  # grayscale: replicate to RGB, convert back afterwards (as Real-ESRGAN)
        mode, rgb, alpha = 'gray', cv2.cvtColor(img_f, cv2.COLOR_GRAY2RGB), None
    elif img.shape[2] == 4:
        mode, rgb, alpha = 'rgba', cv2.cvtColor(img_f[:, :, :3], cv2.COLOR_BGR2RGB), img_f[:, :, 3]
    else:
        mode, rgb, alpha = 'rgb', cv2.cvtColor(img_f, cv2.COLOR_BGR2RGB), None

    out = upscale_rgb(model, rgb, scale, device, **kwargs)
    if mode == 'gray':
        out = cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)
    else:
        out = cv2.cvtColor(out, cv2.COLOR_RGB2BGR)
    if alpha is not None:
        alpha_up = upscale_alpha(model, torch.from_numpy(np.ascontiguousarray(alpha))[None, None].to(device), scale,
                                 alpha_upsampler, **kwargs)
        out = np.dstack((out, alpha_up[0, 0].numpy()))
    out = np.clip(np.round(out * max_value), 0, max_value)
    return out.astype(np.uint16 if max_value == 65535 else np.uint8)


def output_extension(input_path, ext):
    """The output extension (with the dot): the input's own for ``auto`` (BMP becomes PNG), else ``ext``.

    The choice depends on names only, so every output name is known before any image is decoded.
    """
    ext = ext.lower().lstrip('.')
    if ext == 'auto':
        ext = {'jpeg': 'jpg', 'tiff': 'tif', 'bmp': 'png'}.get(Path(input_path).suffix.lower().lstrip('.'),
                                                             Path(input_path).suffix.lower().lstrip('.'))
    if ext not in OUTPUT_EXTENSIONS:
        raise InferenceError(f'output format must be one of {OUTPUT_EXTENSIONS}, got {ext!r} (--ext)')
    return '.' + ext


def write_image_atomic(path, img, overwrite=False):
    """Encode ``img`` for ``path``'s extension and write it with :func:`~srconvnet.atomic_write.atomic_write`
    (complete or not at all; an existing ``path`` is replaced only with ``overwrite=True``)."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if img.dtype == np.uint16 and ext not in ('.png', '.tif', '.tiff'):
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)  # 16 → 8 bit for JPEG/WebP
    if ext in ('.jpg', '.jpeg') and img.ndim == 3 and img.shape[2] == 4:
        tqdm.write(f'warning: {path}: JPEG has no alpha channel; the upscaled alpha is dropped (use --ext png)')
        img = img[:, :, :3]
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext in ('.jpg', '.jpeg') else []
    ok, buffer = cv2.imencode(ext, img, params)
    if not ok:
        raise InferenceError(f'{path}: OpenCV cannot encode a {img.dtype} {img.shape} image as {ext}')
    try:
        atomic_write(path, buffer, overwrite=overwrite)
    except FileExistsError as e:  # appeared while we were working (run() refuses existing outputs up front)
        raise FileExistsError(f'{e}; pass --overwrite to replace it') from None


# ----------------------------------------------------------------------------------------------------------------
# files


def list_inputs(input_path):
    """The image files named by ``input_path``: the file itself, or a folder's image files sorted by name."""
    path = Path(input_path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise InferenceError(f'{path}: folder holds no image files ({", ".join(IMAGE_EXTENSIONS)})')
        return files
    raise InferenceError(f'{path}: no such file or folder')


def folders_to_make(folder):
    """The folders that making ``folder`` would create (those not there yet), deepest first."""
    folder = Path(folder).absolute()
    return [p for p in (folder, *folder.parents) if not p.exists()]


#: what one image's failure can raise (bad or unsupported file, OpenCV, torch at run time, the file system);
#: anything else is a bug and ends the run with its traceback
IMAGE_FAILURES = (ValueError, OSError, RuntimeError, MemoryError, cv2.error)


def failure_reason(path, err):
    """One line saying why ``path`` failed: the message of ``err`` without the path it starts with, and with the
    exception's name where it is not one of this tool's own messages."""
    text = (str(err).strip() or type(err).__name__).splitlines()[0]
    text = text[len(f'{path}: '):] if text.startswith(f'{path}: ') else text
    return text if isinstance(err, InferenceError) else f'{type(err).__name__}: {text}'


def run(input_path,
        output_dir,
        weights,
        scale='auto',
        tile=DEFAULT_TILE,
        tile_pad=DEFAULT_TILE_PAD,
        precision='fp32',
        device='auto',
        suffix=None,
        ext='auto',
        alpha_upsampler='model',
        overwrite=False,
        progress=True):
    """Upscale ``input_path`` (file or folder) into ``output_dir``; returns ``(written, failed)``: the paths
    written, and ``(input path, reason)`` for each image that failed (each also reported on stderr as it fails; the
    other images are still processed). ``output_dir`` is made when the first image is written; the folders this run
    made are removed again if nothing was left in them."""
    if tile < 0 or tile_pad < 0:
        raise InferenceError(f'--tile and --tile-pad must be >= 0, got {tile} and {tile_pad}')
    if alpha_upsampler not in ALPHA_UPSAMPLERS:
        raise InferenceError(f'--alpha-upsampler must be model or bilinear, got {alpha_upsampler!r}')
    device = resolve_device(device)
    autocast_dtype = check_precision(precision, device)
    inputs = list_inputs(input_path)
    model, config = load_model(weights, scale=scale, device=device)
    scale = config['upscale']
    suffix = f'x{scale}' if suffix is None else suffix

    # every output name is decided, and checked, before any image is processed
    jobs, seen = [], {}
    for path in inputs:
        stem = path.stem + (f'_{suffix}' if suffix else '')
        out_path = Path(output_dir) / (stem + output_extension(path, ext))
        if out_path.resolve() == path.resolve():
            raise InferenceError(f'{out_path} is the input image itself; choose another --output or --suffix')
        if out_path in seen:
            raise InferenceError(f'{seen[out_path]} and {path} would both be written to {out_path}; '
                                 'rename one or use --suffix/--ext')
        seen[out_path] = path
        jobs.append((path, out_path))
    existing = [str(out) for _, out in jobs if out.exists()]
    if existing and not overwrite:
        shown = ', '.join(existing[:5]) + (f' and {len(existing) - 5} more' if len(existing) > 5 else '')
        raise FileExistsError(f'output exists: {shown}; pass --overwrite to replace')

    made = folders_to_make(output_dir)
    written, failed = [], []
    try:
        for path, out_path in tqdm(jobs, desc='SRConvNet', unit='img', disable=not progress):
            try:
                img, max_value = read_image(path)
                out = upscale_image(model, img, max_value, scale, device, alpha_upsampler=alpha_upsampler,
                                    tile=tile, tile_pad=tile_pad, autocast_dtype=autocast_dtype, progress=progress)
                os.makedirs(output_dir, exist_ok=True)
                write_image_atomic(out_path, out, overwrite=overwrite)
            except IMAGE_FAILURES as err:
                failed.append((path, failure_reason(path, err)))
                tqdm.write(f'skipped {path}: {failed[-1][1]}', file=sys.stderr)
                continue
            written.append(out_path)
    finally:  # also on Ctrl-C: no empty folder of this run is left behind
        for folder in made:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return written, failed


def main(argv=None):
    """Console entry point ``srconvnet-infer``."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('-i', '--input', required=True, help='image file or folder of images')
    parser.add_argument('-o', '--output', required=True, help='output folder (created if missing)')
    parser.add_argument('--weights', required=True,
                        help="BasicSR checkpoint (params_ema or params), .safetensors or the authors' checkpoint")
    parser.add_argument('--scale', default='auto', help='"auto" (default) reads it from the checkpoint; a number '
                        'is checked against it')
    parser.add_argument('--tile', type=int, default=DEFAULT_TILE,
                        help=f'tile size in input pixels; 0 = whole image (default {DEFAULT_TILE}: images up to '
                        f'{DEFAULT_TILE}x{DEFAULT_TILE} run whole)')
    parser.add_argument('--tile-pad', type=int, default=DEFAULT_TILE_PAD,
                        help=f'context pixels around each tile (default {DEFAULT_TILE_PAD})')
    parser.add_argument('--precision', default='fp32', choices=sorted(PRECISIONS),
                        help='fp32 (default), bf16 autocast (CPU or CUDA), fp16 autocast (CUDA only)')
    parser.add_argument('--device', default='auto', help='auto (default: cuda if available), cpu, cuda or cuda:N')
    parser.add_argument('--suffix', default=None, help='appended to output names (default x<scale>)')
    parser.add_argument('--ext', default='auto', help='auto (input format; PNG for 16-bit or alpha when needed), '
                        'png, jpg, webp or tif')
    parser.add_argument('--alpha-upsampler', default='model', choices=ALPHA_UPSAMPLERS,
                        help='how the alpha channel is upscaled (default: by the network, as Real-ESRGAN)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    args = parser.parse_args(argv)
    try:
        written, failed = run(args.input, args.output, args.weights, scale=args.scale, tile=args.tile,
                              tile_pad=args.tile_pad, precision=args.precision, device=args.device,
                              suffix=args.suffix, ext=args.ext, alpha_upsampler=args.alpha_upsampler,
                              overwrite=args.overwrite, progress=not args.quiet)
    except (InferenceError, CheckpointError, FileExistsError) as err:
        parser.exit(2, f'error: {err}\n')
    print(f'wrote {len(written)} image(s)' + (f' to {args.output}' if written else ''))
    if failed:
        listed = ''.join(f'  {path}: {reason}\n' for path, reason in failed)
        parser.exit(1, f'error: {len(failed)} of {len(written) + len(failed)} image(s) failed:\n{listed}')


if __name__ == '__main__':
    main()
