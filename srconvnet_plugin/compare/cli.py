"""The ``srconvnet-compare`` command: parse, check everything, build each network once, measure, write."""
import argparse
import os
import sys

import torch
from tqdm import tqdm

from srconvnet_plugin.compare.build import build
from srconvnet_plugin.compare.measure import measure, relative_times, time_alternating, traced_size
from srconvnet_plugin.compare.presets import (PRESETS, SPANDREL_PRESETS, CompareError, available_archs,
                                              default_input_size, parse_size, plugin_archs, resolve_archs,
                                              spandrel_available, spandrel_missing_line)
from srconvnet_plugin.compare.quality import evaluate_quality, find_pairs
from srconvnet_plugin.compare.render import markdown_table, output_paths, write_outputs
from srconvnet_plugin.measure.benchmark_helpers import cpu_info

DESCRIPTION = ('Side-by-side comparison of SR architectures (BasicSR\'s registered archs, the plugin\'s, and '
               'spandrel\'s where installed): parameters, MACs, latency, memory and Y-PSNR/SSIM.')
REFERENCE = 'SRConvNet'  # the default --relative-to, where it is compared


def _epilog():
    spandrel = (f"spandrel presets: {', '.join(SPANDREL_PRESETS)}" if spandrel_available()
                else spandrel_missing_line())
    return (f"presets: {', '.join(PRESETS)}; {spandrel}; plugin archs: {', '.join(plugin_archs())}. "
            "Any registered arch: --arch-opt NAME 'type=X,...'; any spandrel arch: --arch-opt NAME "
            "'type=spandrel.<Name>,...'.")


def build_parser():
    parser = argparse.ArgumentParser(prog='srconvnet-compare', description=DESCRIPTION, epilog=_epilog())
    parser.add_argument('--scale', type=int, nargs='+', default=[4], help='upscaling factor(s) (default: 4)')
    parser.add_argument('--archs', nargs='*', default=None,
                        help='presets or plugin archs to compare (default: all of them; none: only --arch-opt)')
    parser.add_argument('--arch-opt', nargs=2, action='append', default=[], metavar=('NAME', 'OPTS'),
                        help="add any registered arch: NAME 'type=X,num_feat=32,depths=[6,6]' (BasicSR network_g), "
                        "or a spandrel arch: NAME 'type=spandrel.SAFMN,dim=24'")
    parser.add_argument('--input-size', type=parse_size, default=None, metavar='HxW',
                        help='LR input size (default: the size whose output is 1280×720, e.g. 180x320 at ×4)')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--runs', type=int, default=10, help='timed rounds (default: 10)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds first (default: 2)')
    parser.add_argument('--relative-to', default=None, metavar='NAME',
                        help=f'the network times are given relative to (default: {REFERENCE} if compared, else '
                        'the first)')
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


def check_args(args):
    """The ``ArchSpec`` list, test pairs (or None) and reference name for ``args``; a ``CompareError`` naming the
    first bad input."""
    names = args.archs if args.archs is not None else list(available_archs())
    if args.archs is None and not spandrel_available():
        print(spandrel_missing_line(), file=sys.stderr)
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
    if args.warmup < 0:
        raise CompareError(f'--warmup must be at least 0, got {args.warmup}')
    reference = args.relative_to or (REFERENCE if REFERENCE in by_name else specs[0].name)
    if reference not in by_name:
        raise CompareError(f'--relative-to {reference!r} is not among the compared archs ({", ".join(by_name)})')
    return specs, pairs, reference


def run(args):
    """Run the comparison for parsed ``args``; returns (rows, paths). Raises ``CompareError`` on bad input."""
    specs, pairs, reference = check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    # every network is built (and its checkpoint loaded) here, once: a bad one stops the run before any measuring
    networks = {scale: [build(spec, scale, args.device) for spec in specs] for scale in args.scale}
    existing = [p for p in output_paths(args.out_dir) if os.path.exists(p)]
    if existing and not args.overwrite:
        raise CompareError(f'{", ".join(existing)} exist; pass --overwrite to replace them or choose --out-dir')

    argv = getattr(args, 'argv', None) or []
    meta = dict(command=' '.join(['python -m srconvnet_plugin.compare'] + argv), torch=torch.__version__,
                device=args.device, threads=torch.get_num_threads(), runs=args.runs, warmup=args.warmup,
                timing='alternating rounds', relative_to=reference, cpu=cpu_info()['model'], gt=args.gt, lq=args.lq,
                weights=args.weights, complete=False)
    total = sum(len(nets) for nets in networks.values())
    rows, paths = [], []
    for scale, nets in networks.items():
        size = args.input_size or default_input_size(scale)
        inputs = [torch.rand(1, net.channels, *traced_size(net, size)[0], device=args.device) for net in nets]
        with tqdm(total=args.warmup + args.runs, desc=f'timing ×{scale}', unit='round', file=sys.stderr) as bar:
            times = time_alternating(nets, inputs, args.runs, args.warmup, args.device, progress=bar.update)
        del inputs
        ref = next(i for i, net in enumerate(nets) if net.spec.name == reference)
        relative = relative_times(times, ref)
        for net, own_times, own_relative in tqdm(list(zip(nets, times, relative)), desc='compare', unit='arch',
                                                 file=sys.stderr):
            row = measure(net, size, own_times, own_relative, reference, device=args.device,
                          memory=not args.no_memory, threads=args.threads)
            if pairs:
                row['psnr_y'], row['ssim_y'] = evaluate_quality(net, pairs, device=args.device)
            rows.append(row)
            # rewritten after every network, so an interrupted run keeps what it measured ('complete' says which)
            meta['complete'] = len(rows) == total
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
