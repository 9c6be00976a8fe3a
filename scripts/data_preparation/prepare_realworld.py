"""HR photos → what the real-world option files (options/train/RealSRConvNet/) read: Real-ESRGAN's data steps.

    python scripts/data_preparation/prepare_realworld.py multiscale --input datasets/DF2K/DF2K_HR \
        --output datasets/DF2K/DF2K_multiscale
    python scripts/data_preparation/prepare_realworld.py sub-images --input datasets/DF2K/DF2K_multiscale \
        --output datasets/DF2K/DF2K_multiscale_sub
    python scripts/data_preparation/prepare_realworld.py meta-info --root datasets/DF2K \
        --input datasets/DF2K/DF2K_multiscale_sub datasets/DF2K/OST \
        --output datasets/DF2K/meta_info/meta_info_DF2Kmultiscale+OST_sub.txt

Only ``meta-info`` is needed for a folder of your own HR photos. See ``srconvnet_plugin.data_preparation``
(``make_multiscale``, ``make_subimages``, ``write_meta_info``) for what is made; docs/realworld.md for the recipe.
"""
import argparse
import sys

from srconvnet_plugin.data.data_preparation import (MULTISCALE_SHORTEST_EDGE, REALWORLD_CROP, REALWORLD_STEP,
                                               PreparationError, make_multiscale, make_subimages, write_meta_info)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='prepare_realworld.py',
        description='Prepare HR images for real-world training (RealESRGANDataset) as Real-ESRGAN does: multiscale '
        'copies of DF2K, 400x400 sub-images, and the meta_info file listing the GT images. Existing outputs are '
        'refused; every output appears complete or not at all.')
    commands = parser.add_subparsers(dest='command', required=True)
    multi = commands.add_parser('multiscale', help='copies scaled by 0.75, 1/2, 1/3 and one with the shortest edge '
                                f'{MULTISCALE_SHORTEST_EDGE} (<stem>T0.png ... <stem>T3.png, Lanczos)')
    sub = commands.add_parser('sub-images', help=f'{REALWORLD_CROP}x{REALWORLD_CROP} sub-images every '
                              f'{REALWORLD_STEP} pixels (<stem>_s001.png ...)')
    meta = commands.add_parser('meta-info', help='the meta_info file: one GT path per line, relative to --root '
                               '(dataroot_gt); every image is decoded first, undecodable ones are refused by name')
    for command in (multi, sub):
        command.add_argument('--input', required=True, help='folder of HR images')
        command.add_argument('--output', required=True, help='folder to create')
    sub.add_argument('--crop-size', type=int, default=REALWORLD_CROP, help=f'default {REALWORLD_CROP}')
    sub.add_argument('--step', type=int, default=REALWORLD_STEP, help=f'default {REALWORLD_STEP}')
    meta.add_argument('--input', required=True, nargs='+', help='folders of GT images, all under --root')
    meta.add_argument('--root', required=True, help='the option file\'s dataroot_gt')
    meta.add_argument('--output', required=True, help='the meta_info file to write (the option file\'s meta_info)')
    for command in (multi, sub, meta):
        command.add_argument('--n-workers', type=int, default=None, help='processes (default: all cores)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == 'multiscale':
            print(f'{args.output}: {len(make_multiscale(args.input, args.output, args.n_workers))} images')
        elif args.command == 'sub-images':
            names, small = make_subimages(args.input, args.output, args.crop_size, args.step, args.n_workers)
            print(f'{args.output}: {len(names)} sub-images')
            if small:
                print(f'skipped {len(small)} image(s) smaller than {args.crop_size} pixels: {", ".join(small)}')
        else:
            print(f'{args.output}: {write_meta_info(args.input, args.root, args.output, args.n_workers)} images')
    except PreparationError as e:
        parser.exit(2, f'{parser.prog}: error: {e}\n')


if __name__ == '__main__':
    sys.exit(main())
