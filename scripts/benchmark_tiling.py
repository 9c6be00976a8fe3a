"""Measure what tiling costs SRConvNet: PSNR of tiled against whole-image output, and peak memory for a 4K output.

SRConvNet has three image-wide operations (the Fourier unit's FFT, the softmax over all H·W positions and the dynamic
convs' global average pool), so a tile does not compute what the whole image computes. This script measures by how
much, on scikit-image's photographs used as low-resolution inputs:

    python scripts/benchmark_tiling.py --stress              # default config, random init (+ attention-heavy variant)
    python scripts/benchmark_tiling.py --weights net_g.pth   # your trained checkpoint
    python scripts/benchmark_tiling.py --model quick-train   # a small model trained here first (slow on CPU)
    python scripts/benchmark_tiling.py --memory              # also peak memory of a 3840×2160 output (default config)

PSNR is over the RGB output in [0, 1] (clamped, not quantised), whole-image output as the reference. Peak memory is the
peak resident set size of a fresh process (``VmHWM``) minus its peak just before the forward pass, on CPU; on CUDA it
is ``torch.cuda.max_memory_allocated``.
"""
import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import srconvnet_plugin  # noqa: F401  (basicsr import shims, arch registration)
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.atomic_write import atomic_write
from srconvnet.infer import load_model, upscale_tensor

TRAIN_IMAGES = ('astronaut', 'chelsea', 'rocket', 'immunohistochemistry')
EVAL_IMAGES = ('coffee', 'astronaut', 'rocket', 'chelsea')
SMALL_CONFIG = dict(num_feat=16, num_block=2, num_heads=4, num_kernels=4, upscale=4)  # trains on 2 CPU cores


def photo(name):
    """A scikit-image photograph as a 1×3×H×W float tensor in [0, 1]."""
    from skimage import data
    img = getattr(data, name)()
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).float().div(255).unsqueeze(0)


def downscale(hr, scale):
    """Bicubic downscaling with antialiasing (close to MATLAB's imresize)."""
    h, w = hr.shape[-2:]
    return F.interpolate(hr, size=(h // scale, w // scale), mode='bicubic', antialias=True,
                         align_corners=False).clamp(0, 1)


def psnr(a, b):
    mse = torch.mean((a.double() - b.double())**2).item()
    return float('inf') if mse == 0 else 10 * math.log10(1.0 / mse)


def quick_train(iters, seed=0, batch=4, lq_patch=24, log=print):
    """Train SMALL_CONFIG ×4 for ``iters`` Adam steps (L1) on bicubic pairs cut from TRAIN_IMAGES."""
    torch.manual_seed(seed)
    scale = SMALL_CONFIG['upscale']
    model = SRConvNet(**SMALL_CONFIG)
    hrs = [photo(n) for n in TRAIN_IMAGES]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iters, eta_min=1e-5)
    hp = lq_patch * scale
    start = time.time()
    for it in range(1, iters + 1):
        patches = []
        for _ in range(batch):
            hr = hrs[torch.randint(len(hrs), ()).item()]
            y = torch.randint(hr.shape[2] - hp + 1, ()).item()
            x = torch.randint(hr.shape[3] - hp + 1, ()).item()
            p = hr[:, :, y:y + hp, x:x + hp]
            if torch.rand(()) < 0.5:
                p = p.flip(-1)
            patches.append(p)
        gt = torch.cat(patches)
        lq = downscale(gt, scale)
        loss = F.l1_loss(model(lq), gt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 50 == 0 or it == iters:
            log(f'  iter {it}/{iters}  l1 {loss.item():.4f}  {time.time() - start:.0f}s')
    return model.eval()


def held_out_quality(model, scale):
    """PSNR against the ground truth on coffee (not trained on): model vs plain bicubic, for context."""
    gt = photo('coffee')
    gt = gt[:, :, :gt.shape[2] // scale * scale, :gt.shape[3] // scale * scale]
    lq = downscale(gt, scale)
    sr = upscale_tensor(model, lq, scale, tile=0)
    bic = F.interpolate(lq, scale_factor=scale, mode='bicubic', align_corners=False).clamp(0, 1)
    crop = (slice(None), slice(None), slice(scale, -scale), slice(scale, -scale))
    return psnr(sr[crop], gt[crop]), psnr(bic[crop], gt[crop])


def center_crop(img, size):
    if not size:
        return img
    h, w = img.shape[-2:]
    y, x = max(h - size, 0) // 2, max(w - size, 0) // 2
    return img[:, :, y:y + size, x:x + size]


def tiling_table(model, scale, tiles, pads, images, crop=0, log=print):
    """PSNR (dB) of tiled vs whole-image output, averaged over ``images``; rows (tile, pad)."""
    rows = []
    refs = {}
    for name in images:
        lq = center_crop(photo(name), crop)
        t = time.time()
        refs[name] = (lq, upscale_tensor(model, lq, scale, tile=0))
        log(f'  whole {name} {tuple(lq.shape[-2:])}: {time.time() - t:.1f}s')
    for tile in tiles:
        for pad in pads:
            values, worst = [], 0.0
            for name in images:
                lq, ref = refs[name]
                out = upscale_tensor(model, lq, scale, tile=tile, tile_pad=pad)
                values.append(psnr(out, ref))
                worst = max(worst, (out - ref).abs().max().item() * 255)
            rows.append({'tile': tile, 'pad': pad, 'psnr_db': float(np.mean(values)),
                         'psnr_min_db': float(np.min(values)), 'max_abs_diff_8bit': worst})
            log(f'  tile {tile} pad {pad}: {rows[-1]["psnr_db"]:.2f} dB (min {rows[-1]["psnr_min_db"]:.2f}), '
                f'max |diff| {worst:.2f}/255')
    return rows


def peak_rss_mib():
    """Peak resident set size of this process in MiB: ``VmHWM`` (``ru_maxrss`` would include the parent's peak,
    which Linux carries across fork and exec)."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: an upper bound


def memory_child(tile, tile_pad, device):
    """Run one 960×540 → 3840×2160 forward with the default config in this process; print peak memory (JSON)."""
    torch.manual_seed(0)
    model = SRConvNet(upscale=4).eval().to(device)
    lq = torch.rand(1, 3, 540, 960, device=device)
    before = peak_rss_mib()
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    t = time.time()
    out = upscale_tensor(model, lq, 4, tile=tile, tile_pad=tile_pad)
    seconds = time.time() - t
    if device.startswith('cuda'):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = peak_rss_mib() - before
    print(json.dumps({'tile': tile, 'pad': tile_pad, 'device': device, 'peak_mib': round(peak),
                      'process_peak_mib': round(peak_rss_mib()), 'baseline_mib': round(before),
                      'out_mib': round(out.numel() * 4 / 2**20), 'seconds': round(seconds, 1)}))


def memory_table(settings, device, log=print):
    rows = []
    for tile, pad in settings:
        cmd = [sys.executable, os.path.abspath(__file__), '--memory-child', str(tile), str(pad), '--device', device]
        result = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        if result.returncode != 0:
            raise RuntimeError(f'memory run tile={tile} failed:\n{result.stderr[-2000:]}')
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
        log(f'  4K output, tile {tile} pad {pad}: peak {rows[-1]["peak_mib"]} MiB, {rows[-1]["seconds"]}s')
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--weights', help='checkpoint to measure (default: see --model)')
    parser.add_argument('--model', choices=('random', 'quick-train'), default='random',
                        help='without --weights: the default config with its default random init, or a small '
                        'model trained here for --train-iters iterations')
    parser.add_argument('--train-iters', type=int, default=200)
    parser.add_argument('--tiles', type=int, nargs='+', default=[64, 128, 256])
    parser.add_argument('--pads', type=int, nargs='+', default=[0, 16, 32])
    parser.add_argument('--images', nargs='+', default=list(EVAL_IMAGES))
    parser.add_argument('--crop', type=int, default=0, help='centre-crop each input to at most CROP×CROP pixels')
    parser.add_argument('--stress', action='store_true',
                        help='also measure a random model with layer_scale ~ N(0, 1) (attention branch dominant)')
    parser.add_argument('--memory', action='store_true', help='measure peak memory for a 4K output')
    parser.add_argument('--skip-tiling', action='store_true', help='only the memory measurement')
    parser.add_argument('--memory-tiles', type=int, nargs='+', default=[0, 512, 256])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--out', help='write the results as JSON here')
    parser.add_argument('--memory-child', type=int, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child, args.device)
        return

    results = {}
    if args.weights:
        model, config = load_model(args.weights, device='cpu')
        results['model'] = f'{args.weights} {config}'
    elif args.model == 'random':
        torch.manual_seed(0)
        config = dict(upscale=4)
        model = SRConvNet(**config).eval()
        results['model'] = 'default config x4, default random init (untrained)'
    else:
        print(f'quick-training SRConvNet {SMALL_CONFIG} for {args.train_iters} iterations on {TRAIN_IMAGES}')
        model = quick_train(args.train_iters)
        config = SMALL_CONFIG
        results['model'] = f'quick-trained {SMALL_CONFIG}, {args.train_iters} iterations'
    scale = config['upscale']
    if args.skip_tiling:
        pass
    elif args.weights or args.model == 'quick-train':
        sr_psnr, bic_psnr = held_out_quality(model, scale)
        results['held_out_coffee'] = {'model_db': sr_psnr, 'bicubic_db': bic_psnr}
        print(f'held-out coffee x{scale}: model {sr_psnr:.2f} dB, bicubic {bic_psnr:.2f} dB')
    if not args.skip_tiling:
        print('tiled vs whole image:')
        results['tiling'] = tiling_table(model, scale, args.tiles, args.pads, args.images, args.crop)
    if args.stress and not args.skip_tiling:
        torch.manual_seed(1)
        stress = SRConvNet(**{**config, 'upscale': scale}).eval()
        with torch.no_grad():
            for block in stress.blocks:
                block.attention.layer_scale.normal_()
        print('random model, layer_scale ~ N(0, 1): tiled vs whole image')
        results['tiling_stress'] = tiling_table(stress, scale, args.tiles, args.pads, args.images, args.crop)
    if args.memory:
        print(f'peak memory, default config x4, 960x540 -> 3840x2160 on {args.device}:')
        results['memory_4k'] = memory_table([(t, 32) for t in args.memory_tiles], args.device)
    if args.out:
        atomic_write(args.out, json.dumps(results, indent=1).encode('utf-8'))
    print(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
