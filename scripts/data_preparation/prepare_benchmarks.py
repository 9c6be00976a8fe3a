"""Benchmark HR images → the GTmod12 / LRbicx{s} folders that the option files read (validation and test).

    python scripts/data_preparation/prepare_benchmarks.py --input benchmark --output datasets

See ``srconvnet_plugin.data.data_preparation.prepare_benchmark``.
"""
import argparse
import os.path as osp
import sys

from srconvnet_plugin.data.data_preparation import (BENCHMARKS, PreparationError, benchmark_output_paths,
                                                    find_benchmark_hr, prepare_benchmark, refuse_existing)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='prepare_benchmarks.py',
        description='Make the test sets of the paper protocol: every HR image is mod-cropped to a multiple of 12 '
        '(GTmod12) and its bicubic LR made with BasicSR\'s MATLAB-compatible imresize (LRbicx2, LRbicx3, LRbicx4). '
        'Existing outputs are refused.',
        epilog='Inputs, under --input, for each name: <name>/HR/*.png (the SR benchmark archive used by EDSR and '
        'most papers) or <name>/*.png; B100 is also found as BSDS100 or BSD100. Outputs, under --output: '
        '<name>/GTmod12/<image>.png and <name>/LRbicx{s}/<image>.png (e.g. datasets/Set5/GTmod12/baby.png).')
    parser.add_argument('--input', required=True, help='folder holding the benchmark folders (e.g. benchmark)')
    parser.add_argument('--output', required=True, help='folder to write <name>/GTmod12 ... into (e.g. datasets)')
    parser.add_argument('--names', nargs='+', default=list(BENCHMARKS),
                        help=f'benchmarks to prepare (default: {" ".join(BENCHMARKS)})')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], choices=[2, 3, 4],
                        help='LR scales (default: 2 3 4)')
    parser.add_argument('--n-workers', type=int, default=None, help='processes (default: all cores)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        sources = {name: find_benchmark_hr(args.input, name) for name in args.names}
        # refuse before any work: a second run must not leave some sets made and others not
        refuse_existing([path for name in sources
                         for path in benchmark_output_paths(osp.join(args.output, name), args.scales).values()])
        for name, hr_dir in sources.items():
            out = osp.join(args.output, name)
            stems = prepare_benchmark(hr_dir, out, scales=args.scales, n_workers=args.n_workers)
            print(f'{out}: {len(stems)} images from {hr_dir}')
    except PreparationError as e:
        parser.exit(2, f'{parser.prog}: error: {e}\n')


if __name__ == '__main__':
    sys.exit(main())
