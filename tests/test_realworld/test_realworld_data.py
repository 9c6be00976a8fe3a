"""Data preparation for real-world training on real photographs: the meta_info file RealESRGANDataset reads, Real-
ESRGAN's multiscale DF2K and sub-images; outputs appear whole or not at all, undecodable images are refused by name,
nothing is overwritten."""
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import REPO_ROOT, TEXTURED_PHOTOS, make_hr_folder, ok, python_cmd
from realworld_helpers import run
from srconvnet_plugin.data.data_preparation import (PreparationError, make_multiscale, make_subimages,
                                                    multiscale_sizes, subimage_boxes, write_meta_info)

SCRIPT = 'scripts/data_preparation/prepare_realworld.py'


@pytest.fixture
def root(tmp_path, hr_photos):
    """``root/DF2K`` (the four HR photos) and ``root/OST`` (two others, 100x100), like DF2K + OST under one root."""
    shutil.copytree(hr_photos, tmp_path / 'DF2K')
    make_hr_folder(tmp_path / 'OST', TEXTURED_PHOTOS[4:], size=100)
    return tmp_path


def test_meta_info_lists_every_image_relative_to_the_root_and_realesrgandataset_reads_it(root):
    from srconvnet_plugin.patches.compat import apply_pipeline_shims
    apply_pipeline_shims()
    from basicsr.data import build_dataset
    assert write_meta_info([root / 'DF2K', root / 'OST'], root, root / 'meta' / 'meta_info.txt', n_workers=1) == 6
    lines = (root / 'meta' / 'meta_info.txt').read_text().splitlines()
    assert lines == [f'DF2K/{n}.png' for n in sorted(TEXTURED_PHOTOS[:4])] + \
        [f'OST/{n}.png' for n in sorted(TEXTURED_PHOTOS[4:])]
    dataset = build_dataset(dict(
        name='df2k+ost', type='RealESRGANDataset', phase='train', dataroot_gt=str(root), io_backend={'type': 'disk'},
        meta_info=str(root / 'meta' / 'meta_info.txt'), blur_kernel_size=21, kernel_list=['iso'], kernel_prob=[1],
        sinc_prob=0, blur_sigma=[0.2, 3], betag_range=[0.5, 4], betap_range=[1, 2], blur_kernel_size2=21,
        kernel_list2=['iso'], kernel_prob2=[1], sinc_prob2=0, blur_sigma2=[0.2, 1.5], betag_range2=[0.5, 4],
        betap_range2=[1, 2], final_sinc_prob=0.8, use_hflip=True, use_rot=False))
    assert len(dataset) == 6 and dataset[5]['gt'].shape == (3, 400, 400)  # (padded to 400, as Real-ESRGAN does)
    assert dataset[5]['gt_path'] == str(root / 'OST' / f'{sorted(TEXTURED_PHOTOS[4:])[1]}.png')


def test_meta_info_refuses_undecodable_images_by_name_and_writes_nothing(root):
    (root / 'DF2K' / 'broken.png').write_bytes((root / 'DF2K' / 'coffee.png').read_bytes()[:300])
    (root / 'OST' / 'empty.jpg').write_bytes(b'')
    with pytest.raises(PreparationError) as info:
        write_meta_info([root / 'DF2K', root / 'OST'], root, root / 'meta_info.txt', n_workers=1)
    assert str(info.value) == (f'images that cannot be decoded (remove or replace them): {root / "DF2K" / "broken.png"}'
                               f': not a readable image; {root / "OST" / "empty.jpg"}: not a readable image')
    assert not (root / 'meta_info.txt').exists() and not list(root.glob('.meta_info.txt*'))


def test_meta_info_refuses_an_existing_file_and_folders_outside_the_root(root):
    (root / 'meta_info.txt').write_text('kept\n')
    with pytest.raises(PreparationError, match='refusing to overwrite existing output: .*meta_info.txt'):
        write_meta_info([root / 'DF2K'], root, root / 'meta_info.txt')
    assert (root / 'meta_info.txt').read_text() == 'kept\n'
    with pytest.raises(PreparationError, match='OST: not inside the root .*DF2K; meta_info paths are relative'):
        write_meta_info([root / 'OST'], root / 'DF2K', root / 'other.txt')


def test_multiscale_is_real_esrgans_and_its_sub_images_cover_each_copy(root, tmp_path):
    made = make_multiscale(root / 'OST', tmp_path / 'multiscale', n_workers=1)
    name = sorted(TEXTURED_PHOTOS[4:])[0]
    assert sorted(made) == sorted(f'{n}T{i}.png' for n in TEXTURED_PHOTOS[4:] for i in range(4))
    sizes = [Image.open(tmp_path / 'multiscale' / f'{name}T{i}.png').size for i in range(4)]
    assert sizes == multiscale_sizes(100, 100) == [(75, 75), (50, 50), (33, 33), (400, 400)]
    assert multiscale_sizes(2040, 1356) == [(1530, 1017), (1020, 678), (680, 452), (601, 400)]
    with Image.open(root / 'OST' / f'{name}.png') as im:  # Pillow's Lanczos, as Real-ESRGAN's script
        expected = np.asarray(im.convert('RGB').resize((75, 75), resample=Image.LANCZOS))
    got = cv2.cvtColor(cv2.imread(str(tmp_path / 'multiscale' / f'{name}T0.png')), cv2.COLOR_BGR2RGB)
    assert np.array_equal(got, expected)

    names, small = make_subimages(tmp_path / 'multiscale', tmp_path / 'sub', crop_size=200, step=100, n_workers=1)
    assert sorted(small) == sorted(str(tmp_path / 'multiscale' / f'{n}T{i}.png') for n in TEXTURED_PHOTOS[4:]
                                   for i in range(3))  # the copies smaller than the crop are named, not cut
    assert len(subimage_boxes(400, 400, 200, 100)) == 9
    assert sorted(names) == sorted(f'{n}T3_s{i:03d}.png' for n in TEXTURED_PHOTOS[4:] for i in range(1, 10))
    whole = cv2.imread(str(tmp_path / 'multiscale' / f'{name}T3.png'))
    assert np.array_equal(cv2.imread(str(tmp_path / 'sub' / f'{name}T3_s005.png')), whole[100:300, 100:300])
    with pytest.raises(PreparationError, match='refusing to overwrite existing output'):
        make_subimages(tmp_path / 'multiscale', tmp_path / 'sub')


@pytest.mark.slow
def test_the_script_makes_the_meta_info_and_refuses_in_one_line(root):
    """(The one test of the worker processes: in a fresh process, as users run it; a pytest process that has run
    torch's OpenMP threads must not fork workers.)"""
    proc = ok(run(python_cmd(REPO_ROOT / SCRIPT, 'meta-info', '--root', root, '--input', root / 'DF2K', root / 'OST',
                             '--output', root / 'meta_info.txt', '--n-workers', '2'), root))
    assert f'{root / "meta_info.txt"}: 6 images' in proc.stdout
    proc = run(python_cmd(REPO_ROOT / SCRIPT, 'meta-info', '--root', root, '--input', root / 'DF2K', '--output',
                          root / 'meta_info.txt'), root)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (f'prepare_realworld.py: error: refusing to overwrite existing '
                                                    f'output: {root / "meta_info.txt"} (delete it or choose another '
                                                    'output folder)')
