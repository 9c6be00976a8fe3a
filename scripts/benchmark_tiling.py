"""Measure what tiling costs SRConvNet: PSNR of tiled against whole-image output, and peak memory for a 4K output.

SRConvNet has three image-wide operations (the Fourier unit's FFT, the softmax over all H·W positions and the dynamic
convs' global average pool), so a tile does not compute what the whole image computes. This script measures by how
much, on scikit-image's photographs used as low-resolution inputs:

    python scripts/benchmark_tiling.py --stress              # default config, random init (+ attention-heavy variant)
    python scripts/benchmark_tiling.py --weights net_g.pth   # your trained checkpoint
    python scripts/benchmark_tiling.py --model quick-train   # a small model trained here first (slow on CPU)
    python scripts/benchmark_tiling.py --memory              # also peak memory of a 3840×2160 output (default config)
    python scripts/benchmark_tiling.py --hosts --comfyui ../shared/ComfyUI   # the tilers of srconvnet-infer and ComfyUI

PSNR is over the RGB output in [0, 1] (clamped, not quantised), whole-image output as the reference. Peak memory is the
peak resident set size of a fresh process (``VmHWM``) minus its peak just before the forward pass, on CPU; on CUDA it
is ``torch.cuda.max_memory_allocated``.

``--hosts`` compares, on one whole photograph (coffee, 600×400, as the ×4 input), the whole-image output with the
plugin's tiler (``srconvnet.tiling``: ``srconvnet-infer --tile``, the ComfyUI node's ``tile_size``) and with
ComfyUI's own ``comfy.utils.tiled_scale`` as its "Upscale Image (using Model)" node calls it (512-pixel tiles, 32 of
overlap, feathered blending; imported from the ComfyUI tree given by ``--comfyui``, never copied): the largest
difference in 8-bit levels, PSNR, time and peak memory, each setting in a fresh process.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

import srconvnet_plugin  # noqa: F401  (basicsr import shims, arch registration)
from srconvnet.archs.srconvnet_arch import SRConvNet
from srconvnet.atomic_write import atomic_write
from srconvnet.infer import load_model
from srconvnet.tiling import upscale_tensor
from srconvnet_plugin.measure.benchmark_helpers import describe_machine, machine_info, peak_rss_bytes

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
    """Peak resident set size of this process in MiB (``benchmark_helpers.peak_rss_bytes``)."""
    return peak_rss_bytes() / 2**20


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

#: --hosts settings: (tiler, tile, overlap); 'whole' is the reference
HOST_SETTINGS = (('whole', 0, 0), ('plugin', 512, 32), ('plugin', 256, 32), ('plugin', 128, 32), ('comfyui', 512, 32),
                 ('comfyui', 256, 32))
#: --host-models: the random model of scripts/comfyui_check.py (layer scales N(0, 1), seed 0) and the default one
HOST_MODELS = ('check', 'default')


def host_model(kind):
    """``'check'``: scripts/comfyui_check.py's SRConvNet (16 features, 2 blocks, x4, layer scales N(0, 1), seed 0);
    ``'default'``: the default configuration x4 with its default random initialisation (seed 0)."""
    torch.manual_seed(0)
    if kind == 'default':
        return SRConvNet(upscale=4).eval()
    model = SRConvNet(**SMALL_CONFIG)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith('layer_scale'):
                p.normal_()
    return model.eval()


def host_child(tiler, tile, pad, model_kind, image, comfyui, out_path):
    """One setting of --hosts in this (fresh) process: writes the output (.npy), prints time and peak memory."""
    model = host_model(model_kind)
    lq = photo(image)
    if tiler == 'comfyui':
        sys.path.insert(0, os.path.abspath(comfyui))
        import comfy.utils
        from spandrel import ModelLoader

        from srconvnet.spandrel_support import install
        install()
        upscale_model = ModelLoader().load_from_state_dict(model.state_dict()).eval()  # what its loader gives
    before = peak_rss_mib()
    start = time.perf_counter()
    if tiler == 'comfyui':
        with torch.inference_mode():  # as ComfyUI's node: tiled_scale over the descriptor, then clamp
            out = comfy.utils.tiled_scale(lq, lambda a: upscale_model(a), tile_x=tile, tile_y=tile, overlap=pad,
                                          upscale_amount=upscale_model.scale).clamp(0, 1)
    else:
        out = upscale_tensor(model, lq, 4, tile=tile, tile_pad=pad)
    seconds = time.perf_counter() - start
    peak = peak_rss_mib() - before
    np.save(out_path, out[0].numpy())
    print(json.dumps({'seconds': seconds, 'peak_mib': peak, 'out_mib': out.numel() * 4 / 2**20}))


def host_table(model_kind, image, comfyui, repeats, log=print):
    """Every HOST_SETTINGS against the whole image, for one model; each run in a fresh process, ``repeats`` rounds
    through all settings (time: the fastest round; memory: the largest peak)."""
    folder = tempfile.mkdtemp(prefix='tiling-hosts-')
    runs = {}
    for _ in range(repeats):
        for tiler, tile, pad in HOST_SETTINGS:
            if tiler == 'comfyui' and not comfyui:
                continue
            out_path = os.path.join(folder, f'{tiler}_{tile}_{pad}.npy')
            cmd = [sys.executable, os.path.abspath(__file__), '--host-child', tiler, str(tile), str(pad), model_kind,
                   image, comfyui or '', out_path]
            result = subprocess.run(cmd, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f'{tiler} {tile}/{pad} failed:\n{result.stderr[-3000:]}')
            runs.setdefault((tiler, tile, pad), []).append(json.loads(result.stdout.strip().splitlines()[-1]))
    whole = torch.from_numpy(np.load(os.path.join(folder, 'whole_0_0.npy')))
    rows = []
    for (tiler, tile, pad), measured in runs.items():
        out = torch.from_numpy(np.load(os.path.join(folder, f'{tiler}_{tile}_{pad}.npy')))
        rows.append({'tiler': tiler, 'tile': tile, 'overlap': pad, 'psnr_db': psnr(out, whole),
                     'max_abs_diff_8bit': (out - whole).abs().max().item() * 255,
                     'seconds': min(m['seconds'] for m in measured), 'peak_mib': max(m['peak_mib'] for m in measured),
                     'out_mib': measured[0]['out_mib']})
        r = rows[-1]
        log(f'  {tiler} {tile}/{pad}: {r["psnr_db"]:.1f} dB, max |diff| {r["max_abs_diff_8bit"]:.3f}/255, '
            f'{r["seconds"]:.1f} s, peak {r["peak_mib"]:.0f} MiB')
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    os.rmdir(folder)
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
    parser.add_argument('--hosts', action='store_true',
                        help='only the comparison of the tilers on one whole photograph (see the top of this file)')
    parser.add_argument('--comfyui', help='with --hosts: a ComfyUI source tree, to measure its tiled_scale too')
    parser.add_argument('--host-models', nargs='+', choices=HOST_MODELS, default=list(HOST_MODELS))
    parser.add_argument('--host-image', default='coffee')
    parser.add_argument('--repeats', type=int, default=2, help='with --hosts: rounds through the settings')
    parser.add_argument('--memory-child', type=int, nargs=2, help=argparse.SUPPRESS)
    parser.add_argument('--host-child', nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(*args.memory_child, args.device)
        return
    if args.host_child:
        tiler, tile, pad, model_kind, image, comfyui, out_path = args.host_child
        host_child(tiler, int(tile), int(pad), model_kind, image, comfyui, out_path)
        return
    if args.hosts:
        info = machine_info(torch.device('cpu'))
        print(describe_machine(info))
        results = {'machine': info, 'image': args.host_image, 'hosts': {}}
        for kind in args.host_models:
            print(f'{kind} model, {args.host_image} x4, tiled vs whole image:')
            results['hosts'][kind] = host_table(kind, args.host_image, args.comfyui, args.repeats)
        if args.out:
            atomic_write(args.out, json.dumps(results, indent=1).encode('utf-8'))
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
