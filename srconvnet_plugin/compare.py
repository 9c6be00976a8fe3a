"""Side-by-side comparison of registered SR architectures: parameters, MACs, latency, memory and Y-PSNR/SSIM.

Usage::

    python -m srconvnet_plugin.compare --scale 2 3 4 --archs SRConvNet SwinIR-light EDSR-baseline SRVGGNetCompact
    python -m srconvnet_plugin.compare --scale 4 --archs SRConvNet --arch-opt tiny 'type=SRConvNet,num_feat=16'
    python -m srconvnet_plugin.compare --scale 4 --archs SRConvNet EDSR-baseline --gt GT_DIR --lq LQ_DIR \\
        --weights SRConvNet=SRConvNet_x4.pth EDSR-baseline=EDSR_Lx4.pth

Every network is built from a BasicSR ``network_g`` dict through ``basicsr.archs.build_network``, so any arch in
``ARCH_REGISTRY`` can be compared (``--arch-opt``); presets hold the lightweight configurations of BasicSR's own
archs as their papers and BasicSR's option files define them, and the plugin's archs are added with their defaults.
Counting conventions are in ``srconvnet_plugin.measure.complexity`` (MACs; the thop columns are the counts as
commonly reported, ``thop.profile``, beside the true ones) and ``srconvnet_plugin.measure.profiling`` (time, memory).
Writes ``compare.md``, ``compare.csv``, ``compare.json`` and ``compare.png`` to ``--out-dir``.
"""
import argparse
import csv
import inspect
import io
import json
import math
import os
import sys
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

import srconvnet_plugin

srconvnet_plugin.require_toolbox('srconvnet-compare')  # before anything imports basicsr
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from srconvnet.atomic_write import atomic_write
from srconvnet_plugin.measure.complexity import count_complexity, reparameterised_params, thop_counts
from srconvnet_plugin.measure.benchmark_helpers import cpu_info
from srconvnet_plugin.measure.profiling import cpu_peak_memory_in_fresh_process, cuda_peak_memory, measure_latency

# Lightweight configurations of BasicSR's own archs (scale argument left out; it is added per run).
PRESETS = OrderedDict([
    # SwinIR paper, lightweight SR (BasicSR options/train/SwinIR/train_SwinIR_SRx4_scratch_P48W8_DIV2K_500k_B4G8)
    ('SwinIR-light', dict(type='SwinIR', in_chans=3, img_size=64, window_size=8, img_range=1., depths=[6, 6, 6, 6],
                          embed_dim=60, num_heads=[6, 6, 6, 6], mlp_ratio=2, upsampler='pixelshuffledirect',
                          resi_connection='1conv')),
    # EDSR paper's baseline (BasicSR options/train/EDSR/train_EDSR_Mx4.yml)
    ('EDSR-baseline', dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, res_scale=1,
                           img_range=255., rgb_mean=[0.4488, 0.4371, 0.4040])),
    # Real-ESRGAN's realesr-general-x4v3 ("S size", num_conv 32); realesr-animevideov3 ("XS size") is num_conv 16.
    # basicsr registers it with suffix: 'SRVGGNetCompact_basicsr' is the registry key (Real-ESRGAN's own is
    # the same class without the suffix).
    ('SRVGGNetCompact', dict(type='SRVGGNetCompact_basicsr', num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32,
                             act_type='prelu')),
    ('SRVGGNetCompact-XS', dict(type='SRVGGNetCompact_basicsr', num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16,
                                act_type='prelu')),
    # ECBSR-M4C16 (BasicSR options/train/ECBSR/train_ECBSR_x4_m4c16_prelu.yml): trained and run on the Y channel
    ('ECBSR', dict(type='ECBSR', num_in_ch=1, num_out_ch=1, num_block=4, num_channel=16, with_idt=False,
                   act_type='prelu')),
    # SRResNet with BasicSR's MSRResNet body (BasicSR options/train/SRResNet_SRGAN/train_MSRResNet_x4.yml)
    ('MSRResNet', dict(type='MSRResNet', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16)),
])
DEFAULT_OUTPUT = (720, 1280)  # (H, W) of the HR image the default LR input produces: 1280×720
OUTPUT_NAMES = ('compare.md', 'compare.csv', 'compare.json', 'compare.png')


class CompareError(ValueError):
    """Bad command-line input: unknown arch, malformed option, unusable weights or images."""


@dataclass
class ArchSpec:
    """A network to compare: display name and BasicSR ``network_g`` options without the scale."""
    name: str
    opt: dict
    source: str  # 'preset', 'plugin' or 'arch-opt'
    weights: str = None
    notes: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------------- resolving archs
def registered_archs():
    """Sorted names of every arch in basicsr's ARCH_REGISTRY (BasicSR's own and the plugin's)."""
    return sorted(name for name, _ in ARCH_REGISTRY)


def plugin_archs():
    """Archs registered by this plugin (the core's network and any arch under the toolbox package), with their
    default arguments."""
    return OrderedDict((name, dict(type=name)) for name, obj in sorted(ARCH_REGISTRY)
                       if getattr(obj, '__module__', '').split('.')[0] in ('srconvnet', 'srconvnet_plugin'))


def available_archs():
    """Name -> options of every arch usable by name: the plugin's archs, then the presets."""
    archs = plugin_archs()
    archs.update(PRESETS)
    return archs


def parse_arch_opt(text):
    """Parse ``'type=SwinIR,embed_dim=60,depths=[6,6,6,6]'`` into a dict; values are read as YAML scalars/lists."""
    items, depth, current = [], 0, ''
    for char in text:
        if char in '[{(':
            depth += 1
        elif char in ']})':
            depth -= 1
        if char == ',' and depth == 0:
            items.append(current)
            current = ''
        else:
            current += char
    items.append(current)
    opt = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        if '=' not in item:
            raise CompareError(f'--arch-opt {text!r}: {item!r} is not KEY=VALUE')
        key, value = (s.strip() for s in item.split('=', 1))
        try:
            opt[key] = yaml.safe_load(value.replace('(', '[').replace(')', ']'))
        except yaml.YAMLError as err:
            raise CompareError(f'--arch-opt {text!r}: cannot read the value of {key!r}: {err}') from err
    if 'type' not in opt:
        raise CompareError(f"--arch-opt {text!r}: needs 'type=ARCH' (one of the registered archs: "
                           f'{", ".join(registered_archs())})')
    if opt['type'] not in ARCH_REGISTRY:
        raise CompareError(f"--arch-opt {text!r}: type {opt['type']!r} is not a registered arch; registered: "
                           f'{", ".join(registered_archs())}')
    return opt


def resolve_archs(names, arch_opts=()):
    """``ArchSpec`` list for ``names`` (presets / plugin archs) followed by ``arch_opts`` = [(NAME, 'type=X,...')]."""
    available = available_archs()
    custom = OrderedDict((name, parse_arch_opt(text)) for name, text in arch_opts)
    unknown = [n for n in names if n not in available and n not in custom]
    if unknown:
        raise CompareError(
            f'unknown arch {", ".join(map(repr, unknown))}. Available: {", ".join(available)}. Any registered arch '
            f"can be added with --arch-opt NAME 'type=X,...'; registered: {', '.join(registered_archs())}")
    specs = []
    for name in list(names) + [n for n in custom if n not in names]:
        if name in custom:
            specs.append(ArchSpec(name, custom[name], 'arch-opt'))
        else:
            specs.append(ArchSpec(name, dict(available[name]), 'preset' if name in PRESETS else 'plugin'))
    return specs


def _signature(arch_type):
    return inspect.signature(ARCH_REGISTRY.get(arch_type).__init__).parameters


def opt_for_scale(opt, scale):
    """Copy of ``opt`` with the arch's own scale argument (``upscale`` or ``scale``) set to ``scale``."""
    params = _signature(opt['type'])
    key = 'upscale' if 'upscale' in params else 'scale' if 'scale' in params else None
    if key is None:
        raise CompareError(f"arch {opt['type']} has neither an 'upscale' nor a 'scale' argument")
    if key in opt and int(opt[key]) != scale:
        raise CompareError(f"options {opt} set {key}={opt[key]}, but this run is for scale {scale}")
    return dict(opt, **{key: scale})


def build(name, opt):
    """``build_network(opt)`` in eval mode; an arch that rejects its options is a ``CompareError`` naming them."""
    try:
        return build_network(opt).eval()
    except (TypeError, ValueError, AssertionError, KeyError) as err:
        raise CompareError(f'cannot build {name} from {opt}: {err}') from err


def _opt_value(opt, key, default=None):
    """``opt[key]``, else the arch's default for that argument, else ``default``."""
    if key in opt:
        return opt[key]
    param = _signature(opt['type']).get(key)
    return param.default if param is not None and param.default is not inspect.Parameter.empty else default


def input_channels(opt):
    """Channels the arch takes (``num_in_ch`` / ``in_chans``; 3 if it names neither)."""
    for key in ('num_in_ch', 'in_chans'):
        value = _opt_value(opt, key)
        if value is not None:
            return int(value)
    return 3


def pad_multiple(opt):
    """The input multiple an arch needs; 1 if any size works. SwinIR: its window size (see ``SwinIRModel.test``)."""
    if opt['type'] == 'SwinIR':
        return int(_opt_value(opt, 'window_size', 7))
    return 1


def pad_input(x, multiple):
    """Reflect-pad the bottom/right of ``x`` to a multiple of ``multiple``, as BasicSR's ``SwinIRModel.test``."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), 'reflect')
    return x, pad_h, pad_w


def run_padded(model, x, multiple, scale):
    """``model(x)`` with the input padded to ``multiple`` and the output cropped back (BasicSR's SwinIRModel)."""
    padded, pad_h, pad_w = pad_input(x, multiple)
    out = model(padded)
    return out[..., :out.shape[-2] - pad_h * scale, :out.shape[-1] - pad_w * scale]


def default_input_size(scale):
    """The LR (H, W) whose ×``scale`` output covers 1280×720 (rounded up): 360×640, 240×427, 180×320."""
    return tuple(math.ceil(s / scale) for s in DEFAULT_OUTPUT)


def parse_size(text):
    """'180x320', '180,320' or '64' (square) -> (H, W)."""
    parts = text.lower().replace(',', 'x').split('x')
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f'input size {text!r}: expected HxW or N') from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f'input size {text!r}: expected HxW or N with positive integers')
    return values


# ------------------------------------------------------------------------------------------------------------ quality
def load_weights(model, path, name):
    """Load a checkpoint (``.pth``: ``params_ema`` / ``params`` / bare state dict, weights-only; or
    ``.safetensors``) into ``model``; a file that does not fit it is refused naming the file and ``name``."""
    from srconvnet.checkpoints import CheckpointError, check_fits, load_state_dict

    try:
        model.load_state_dict(check_fits(load_state_dict(path), model, f'{path}: does not fit {name}'), strict=True)
    except CheckpointError as err:
        raise CompareError(str(err)) from err


def find_pairs(gt_dir, lq_dir, filename_tmpl='{}'):
    """(lq_path, gt_path) pairs, matched by BasicSR's ``paired_paths_from_folder`` (LQ name = tmpl.format(GT))."""
    from basicsr.data.data_util import paired_paths_from_folder

    for folder, flag in ((gt_dir, '--gt'), (lq_dir, '--lq')):
        if not os.path.isdir(folder):
            raise CompareError(f'{flag} {folder}: not a directory')
    try:
        paths = paired_paths_from_folder([lq_dir, gt_dir], ['lq', 'gt'], filename_tmpl)
    except AssertionError as err:
        raise CompareError(f'cannot pair {lq_dir} with {gt_dir}: {err}') from err
    if not paths:
        raise CompareError(f'--gt {gt_dir}: no images')
    return [(p['lq_path'], p['gt_path']) for p in sorted(paths, key=lambda p: p['gt_path'])]


def _read_tensor(path, y_only):
    """Image file -> 1×C×H×W float tensor in [0, 1], RGB (or the Y channel, as BasicSR's ``color: y``)."""
    import cv2
    from basicsr.utils import img2tensor
    from basicsr.utils.color_util import bgr2ycbcr

    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise CompareError(f'{path}: not a readable image')
    img = img.astype(np.float32) / 255.
    if y_only:
        img = bgr2ycbcr(img, y_only=True)[..., None]
    return img2tensor(img, bgr2rgb=True, float32=True).unsqueeze(0)


def evaluate_quality(model, pairs, scale, multiple=1, y_only=False, device='cpu'):
    """Mean Y-PSNR and Y-SSIM of ``model`` over (lq, gt) ``pairs``, as BasicSR's SRModel validation computes them.

    GT is cropped to the LQ size × scale (``PairedImageDataset``), the output and GT go through ``tensor2img``
    (clamp to [0, 1], round to 8 bits) and ``calculate_psnr``/``calculate_ssim`` use ``crop_border=scale`` and
    ``test_y_channel=True``.
    """
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils import tensor2img

    psnrs, ssims = [], []
    for lq_path, gt_path in pairs:
        lq = _read_tensor(lq_path, y_only).to(device)
        gt = _read_tensor(gt_path, y_only)
        h, w = lq.shape[-2] * scale, lq.shape[-1] * scale
        if gt.shape[-2] < h or gt.shape[-1] < w:
            raise CompareError(f'{gt_path}: {gt.shape[-2]}×{gt.shape[-1]} is smaller than {lq_path} ×{scale} '
                               f'({h}×{w})')
        gt = gt[..., :h, :w]
        with torch.no_grad():
            out = run_padded(model, lq, multiple, scale)
        sr_img, gt_img = tensor2img(out), tensor2img(gt)
        psnrs.append(calculate_psnr(sr_img, gt_img, crop_border=scale, test_y_channel=True))
        ssims.append(calculate_ssim(sr_img, gt_img, crop_border=scale, test_y_channel=True))
    return float(np.mean(psnrs)), float(np.mean(ssims))


# ---------------------------------------------------------------------------------------------------- measuring
def measure(spec, scale, input_size, device='cpu', runs=10, warmup=2, memory=True, pairs=None, threads=None):
    """Measure one arch at one scale; returns a flat dict (one row of the table)."""
    opt = opt_for_scale(spec.opt, scale)
    model = build(spec.name, opt)
    if spec.weights and pairs:
        load_weights(model, spec.weights, f'{spec.name} ×{scale} ({opt})')
    model = model.to(device)
    channels = input_channels(opt)
    multiple = pad_multiple(opt)
    h, w = input_size
    ph, pw = h + (-h) % multiple, w + (-w) % multiple
    notes = list(spec.notes)
    if (ph, pw) != (h, w):
        notes.append(f'input padded {h}×{w}→{ph}×{pw} (reflect, multiple of {multiple}, as SwinIRModel.test)')
    if channels == 1:
        notes.append('Y channel only (1-channel in/out)')

    cx = count_complexity(model, (channels, ph, pw), device=device)
    params_thop, macs_thop = thop_counts(model, (channels, ph, pw), device=device)
    deployed = reparameterised_params(model)
    if deployed is not None:
        notes.append(f'{deployed:,} params once re-parameterised (training-time branches counted in Params)')
    if cx.unsupported:
        notes.append('not counted: ' + ', '.join(f'{k}×{v}' for k, v in cx.unsupported.items()))
    x = torch.rand(1, channels, ph, pw, device=device)
    with torch.no_grad():  # the trace above already ran the model once at this shape: a warm-up in itself
        latency = measure_latency(lambda: model(x), runs=runs, warmup=warmup, device=device)
        if not memory:
            mem = None
        elif torch.device(device).type == 'cuda':
            mem = cuda_peak_memory(lambda: model(x), device=device)
        else:
            mem = cpu_peak_memory_in_fresh_process(opt, (channels, ph, pw), threads=threads)
    row = OrderedDict(
        arch=spec.name,
        type=opt['type'],
        scale=scale,
        input=f'{h}x{w}',
        traced_input=f'{ph}x{pw}',
        output=f'{h * scale}x{w * scale}',
        params=cx.params,
        params_deployed=deployed,
        macs=cx.macs,
        macs_extra=cx.macs_extra,
        total_macs=cx.total_macs,
        other_ops=cx.other_ops,
        params_thop=params_thop,
        macs_thop=macs_thop,
        latency_median_ms=latency.median_ms,
        latency_iqr_ms=latency.iqr_ms,
        latency_min_ms=latency.min_ms,
        latency_max_ms=latency.max_ms,
        runs=runs,
        device=str(device),
        memory_forward_mb=mem.forward_bytes / 2**20 if mem else None,
        memory_peak_mb=mem.peak_bytes / 2**20 if mem else None,
        memory_kind=mem.kind if mem else None,
        psnr_y=None,
        ssim_y=None,
        notes='; '.join(notes),
        options=opt,
        by_operator=cx.by_operator,
        unsupported=cx.unsupported,
    )
    if spec.weights and pairs:
        row['psnr_y'], row['ssim_y'] = evaluate_quality(model, pairs, scale, multiple, y_only=channels == 1,
                                                        device=device)
    return row


# ------------------------------------------------------------------------------------------------------------ output
CSV_FIELDS = ('arch', 'type', 'scale', 'input', 'traced_input', 'output', 'params', 'params_deployed', 'macs', 'macs_extra',
              'total_macs', 'other_ops', 'params_thop', 'macs_thop', 'latency_median_ms', 'latency_iqr_ms', 'latency_min_ms', 'latency_max_ms',
              'runs', 'device', 'memory_forward_mb', 'memory_peak_mb', 'memory_kind', 'psnr_y', 'ssim_y', 'notes')


def _fmt(value, spec):
    return '–' if value is None else format(value, spec)


def markdown_table(rows):
    """The comparison as a Markdown table (numbers rounded for reading; CSV/JSON keep them exact)."""
    quality = any(r['psnr_y'] is not None for r in rows)
    header = ['Arch', 'Scale', 'LR input', 'Params (K)', 'MACs (G)', 'MACs + FFT/attn/products (G)',
              'Other ops (G)', 'thop Params (K)', 'thop MACs (G)', 'Latency ms (median ± IQR)', 'Fwd mem (MB)']
    if quality:
        header += ['PSNR-Y (dB)', 'SSIM-Y']
    header.append('Notes')
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for r in rows:
        cells = [r['arch'], f"×{r['scale']}", r['input'].replace('x', '×'), f"{r['params'] / 1e3:,.1f}",
                 f"{r['macs'] / 1e9:.2f}", f"{r['total_macs'] / 1e9:.2f}", f"{r['other_ops'] / 1e9:.2f}",
                 f"{r['params_thop'] / 1e3:,.1f}", f"{r['macs_thop'] / 1e9:.2f}",
                 f"{r['latency_median_ms']:.1f} ± {r['latency_iqr_ms']:.1f}", _fmt(r['memory_forward_mb'], '.0f')]
        if quality:
            cells += [_fmt(r['psnr_y'], '.2f'), _fmt(r['ssim_y'], '.4f')]
        cells.append(r['notes'] or '')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def csv_text(rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def plot(rows, path):
    """PSNR (if measured for every row) or median latency against total MACs; marker area ∝ params."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    use_psnr = all(r['psnr_y'] is not None for r in rows)
    key, label = ('psnr_y', 'Y-PSNR (dB)') if use_psnr else ('latency_median_ms', f"latency (ms, {rows[0]['device']})")
    fig, ax = plt.subplots(figsize=(7, 5))
    max_params = max(r['params'] for r in rows)
    for scale in sorted({r['scale'] for r in rows}):
        sel = [r for r in rows if r['scale'] == scale]
        ax.scatter([r['total_macs'] / 1e9 for r in sel], [r[key] for r in sel],
                   s=[30 + 600 * r['params'] / max_params for r in sel], alpha=0.6, label=f'×{scale}')
        for r in sel:
            ax.annotate(r['arch'], (r['total_macs'] / 1e9, r[key]), fontsize=8, xytext=(4, 4),
                        textcoords='offset points')
    ax.set_xscale('log')
    if not use_psnr:
        ax.set_yscale('log')
    ax.set_xlabel('MACs incl. FFT/attention/products (G, log scale)')
    ax.set_ylabel(label)
    ax.set_title('SR architectures (marker area ∝ parameters)')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(title='scale')
    fig.tight_layout()
    fig.savefig(path, dpi=120, format='png')
    plt.close(fig)


def write_outputs(rows, out_dir, meta):
    """Write compare.md/.csv/.json/.png into ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, n) for n in OUTPUT_NAMES]
    atomic_write(paths[0], markdown_table(rows).encode('utf-8'))
    atomic_write(paths[1], csv_text(rows).encode('utf-8'))
    atomic_write(paths[2], (json.dumps({'meta': meta, 'rows': rows}, indent=2) + '\n').encode('utf-8'))
    atomic_write(paths[3], lambda tmp: plot(rows, tmp))
    return paths


# ---------------------------------------------------------------------------------------------------------------- CLI
def build_parser():
    parser = argparse.ArgumentParser(
        prog='srconvnet-compare', description=__doc__.split('\n\n')[0],
        epilog=f"presets: {', '.join(PRESETS)}; plugin archs: {', '.join(plugin_archs())}")
    parser.add_argument('--scale', type=int, nargs='+', default=[4], help='upscaling factor(s) (default: 4)')
    parser.add_argument('--archs', nargs='*', default=None,
                        help='presets or plugin archs to compare (default: all of them; none: only --arch-opt)')
    parser.add_argument('--arch-opt', nargs=2, action='append', default=[], metavar=('NAME', 'OPTS'),
                        help="add any registered arch: NAME 'type=X,num_feat=32,depths=[6,6]' (BasicSR network_g)")
    parser.add_argument('--input-size', type=parse_size, default=None, metavar='HxW',
                        help='LR input size (default: the size whose output is 1280×720, e.g. 180x320 at ×4)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--runs', type=int, default=10, help='timed forward passes (default: 10)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed forward passes first (default: 2)')
    parser.add_argument('--threads', type=int, default=None, help="CPU threads for torch (default: torch's)")
    parser.add_argument('--no-memory', action='store_true', help='skip the peak memory measurement')
    parser.add_argument('--gt', help='folder of ground-truth images (with --lq and --weights: Y-PSNR/SSIM)')
    parser.add_argument('--lq', help='folder of low-resolution images, named as --filename-tmpl says')
    parser.add_argument('--filename-tmpl', default='{}', help="LQ name from the GT name, as BasicSR's option "
                        "(default '{}': same names)")
    parser.add_argument('--weights', nargs='+', default=[], metavar='NAME=PATH',
                        help='checkpoints (.pth or .safetensors)')
    parser.add_argument('--out-dir', default=os.path.join('results', 'compare'),
                        help='where compare.{md,csv,json,png} go (default: results/compare)')
    parser.add_argument('--overwrite', action='store_true', help='replace earlier results in --out-dir')
    return parser


def run(args):
    """Run the comparison for parsed ``args``; returns (rows, paths). Raises ``CompareError`` on bad input."""
    names = args.archs if args.archs is not None else list(available_archs())
    specs = resolve_archs(names, args.arch_opt)
    if not specs:
        raise CompareError('nothing to compare: name --archs or add --arch-opt')
    by_name = {s.name: s for s in specs}
    for item in args.weights:
        name, sep, path = item.partition('=')
        if not sep or not path:
            raise CompareError(f'--weights {item!r}: expected NAME=PATH')
        if name not in by_name:
            raise CompareError(f'--weights {item!r}: {name!r} is not among the compared archs ({", ".join(by_name)})')
        if not os.path.isfile(path):
            raise CompareError(f'--weights {item!r}: {path} does not exist')
        by_name[name].weights = path
    pairs = None
    if args.gt or args.lq or args.weights:
        if not (args.gt and args.lq and args.weights):
            raise CompareError('quality needs all three of --gt, --lq and --weights')
        if len(args.scale) != 1:
            raise CompareError(f'--gt/--lq hold one scale; got --scale {args.scale}')
        pairs = find_pairs(args.gt, args.lq, args.filename_tmpl)
    if args.runs < 1:
        raise CompareError(f'--runs must be at least 1, got {args.runs}')
    for spec in specs:  # fail before measuring anything if an arch cannot be built or a checkpoint does not fit
        for scale in args.scale:
            opt = opt_for_scale(spec.opt, scale)
            model = build(spec.name, opt)
            if spec.weights:
                load_weights(model, spec.weights, f'{spec.name} ×{scale} ({opt})')
    existing = [p for p in (os.path.join(args.out_dir, n) for n in OUTPUT_NAMES) if os.path.exists(p)]
    if existing and not args.overwrite:
        raise CompareError(f'{", ".join(existing)} exist; pass --overwrite to replace them or choose --out-dir')

    if args.threads:
        torch.set_num_threads(args.threads)
    tasks = [(spec, scale) for scale in args.scale for spec in specs]
    argv = getattr(args, 'argv', None) or []
    meta = dict(command=' '.join(['python -m srconvnet_plugin.compare'] + argv), torch=torch.__version__,
                device=args.device, threads=torch.get_num_threads(), runs=args.runs, warmup=args.warmup,
                cpu=cpu_info()['model'], gt=args.gt, lq=args.lq, weights=args.weights, complete=False)
    rows, paths = [], []
    for spec, scale in tqdm(tasks, desc='compare', unit='arch', file=sys.stderr):
        size = args.input_size or default_input_size(scale)
        rows.append(measure(spec, scale, size, device=args.device, runs=args.runs, warmup=args.warmup,
                            memory=not args.no_memory, pairs=pairs, threads=args.threads))
        # rewritten after every network, so an interrupted run keeps what it measured ('complete' says which)
        meta['complete'] = len(rows) == len(tasks)
        paths = write_outputs(rows, args.out_dir, meta)
    return rows, paths


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rows, paths = run(args)
    except CompareError as err:
        parser.exit(2, f'error: {err}\n')
    sys.stdout.write(markdown_table(rows))
    print('\nwrote ' + ', '.join(paths))


if __name__ == '__main__':
    main()
