"""DIV2K HR images → the training LMDBs that options/train/SRConvNet/train_SRConvNet_x{2,3,4}.yml read.

    python scripts/data_preparation/prepare_div2k.py --input datasets/DIV2K/DIV2K_train_HR --output datasets/DIV2K

See ``srconvnet_plugin.data.data_preparation.prepare_div2k`` for what is made and why.
"""
import argparse
import sys

from srconvnet_plugin.data.data_preparation import PreparationError, prepare_div2k


def build_parser():
    parser = argparse.ArgumentParser(
        prog='prepare_div2k.py',
        description='Make the training LMDBs of the paper protocol from the official DIV2K HR images: each image is '
        'mod-cropped to a multiple of 12, its bicubic LR is made with BasicSR\'s MATLAB-compatible imresize, and both '
        'are cut into BasicSR\'s 480x480 sub-images with step 240 (LR: 480/s, step 240/s) and stored as PNG records '
        'with meta_info.txt. Existing outputs are refused.',
        epilog='Inputs: --input, the folder extracted from DIV2K_train_HR.zip (DIV2K_train_HR/0001.png ... 0800.png). '
        'Outputs, under --output: DIV2K_train_HR_sub.lmdb and DIV2K_train_LR_bicubic_X{2,3,4}_sub.lmdb '
        '(each with data.mdb, lock.mdb, meta_info.txt; identical keys 0001_s001, ...).')
    parser.add_argument('--input', required=True, help='folder of DIV2K HR PNG images (DIV2K_train_HR)')
    parser.add_argument('--output', required=True, help='folder to write the LMDBs into (e.g. datasets/DIV2K)')
    parser.add_argument('--scales', type=int, nargs='+', default=[2, 3, 4], choices=[2, 3, 4],
                        help='LR scales (default: 2 3 4)')
    parser.add_argument('--no-hr', action='store_true',
                        help='write only the LR LMDBs, beside an existing DIV2K_train_HR_sub.lmdb with the same keys')
    parser.add_argument('--crop-size', type=int, default=480, help='HR sub-image size, a multiple of 12 (default 480)')
    parser.add_argument('--step', type=int, default=240, help='HR sub-image step, a multiple of 12 (default 240)')
    parser.add_argument('--thresh-size', type=int, default=0,
                        help='add a last sub-image flush with the border when more pixels than this are left '
                        '(default 0, as BasicSR)')
    parser.add_argument('--compress-level', type=int, default=1, choices=range(10), metavar='0-9',
                        help='PNG zlib level of the records (default 1, as BasicSR\'s LMDB maker)')
    parser.add_argument('--n-workers', type=int, default=None, help='processes (default: all cores)')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        made = prepare_div2k(args.input, args.output, scales=args.scales, crop_size=args.crop_size, step=args.step,
                             thresh_size=args.thresh_size, compress_level=args.compress_level,
                             n_workers=args.n_workers, with_hr=not args.no_hr)
    except PreparationError as e:
        parser.exit(2, f'{parser.prog}: error: {e}\n')
    for path, count in made.values():
        print(f'{path}: {count} sub-images')


if __name__ == '__main__':
    sys.exit(main())
