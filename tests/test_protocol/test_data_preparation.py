"""The preparation library and scripts: computed LMDB map sizes, refusals that keep what exists, BasicSR's
sub-image positions, and command lines that name their inputs and outputs."""
import importlib.util
import os

import cv2
import lmdb
import numpy as np
import pytest

from conftest import REPO_ROOT
from srconvnet_plugin.data.data_preparation import (AtomicLmdb, PreparationError, encode_png, lmdb_map_size,
                                                    png_size_bound, prepare_benchmark, prepare_div2k,
                                                    read_meta_info_keys, subimage_starts)

SCRIPTS = REPO_ROOT / 'scripts' / 'data_preparation'


def load_script(name):
    """The script as a module (its real parser and main), without a subprocess."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def noise(h, w, c=3, seed=0):
    """Incompressible pixels: the worst case for a PNG's size."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, c) if c > 1 else (h, w), dtype=np.uint8)


def test_subimage_starts_follow_basicsr_extract_subimages():
    # DIV2K 0001 is 2040 x 1356: every 240 from 0, plus one flush with the border
    assert subimage_starts(1356, 480, 240) == [0, 240, 480, 720, 876]
    assert subimage_starts(2040, 480, 240) == [0, 240, 480, 720, 960, 1200, 1440, 1560]
    assert subimage_starts(960, 480, 240) == [0, 240, 480]  # nothing left over: no extra
    assert subimage_starts(970, 480, 240, thresh_size=24) == [0, 240, 480]  # 10 left <= threshold
    # x3 LR of the same image: the same positions / 3
    assert subimage_starts(1356 // 3, 160, 80) == [p // 3 for p in subimage_starts(1356, 480, 240)]
    with pytest.raises(ValueError, match='smaller than the sub-image size'):
        subimage_starts(400, 480, 240)


@pytest.mark.parametrize('shape', [(1, 1, 3), (7, 13, 1), (120, 120, 3), (480, 480, 3), (161, 777, 3)])
@pytest.mark.parametrize('level', [0, 1, 9])
def test_png_size_bound_holds_for_incompressible_images(shape, level):
    h, w, c = shape
    assert len(encode_png(noise(h, w, c), level)) <= png_size_bound(h, w, c)


def test_computed_map_size_fits_where_basicsr_guess_fails(tmp_path):
    """basicsr's guess (10 x the first image's PNG size x count) overflows when later images are larger."""
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    folder = tmp_path / 'imgs'
    folder.mkdir()
    images = {'a': np.zeros((8, 8, 3), np.uint8), 'b': noise(200, 240), 'c': noise(240, 200, seed=1)}
    for key, img in images.items():
        cv2.imwrite(str(folder / f'{key}.png'), img)
    names = [f'{k}.png' for k in images]
    with pytest.raises(lmdb.MapFullError):
        make_lmdb_from_imgs(str(folder), str(tmp_path / 'guess.lmdb'), names, list(images), compress_level=0)

    out = tmp_path / 'computed.lmdb'
    with AtomicLmdb(out, lmdb_map_size([img.shape for img in images.values()]), compress_level=0) as db:
        for key, img in images.items():
            db.put(key, encode_png(img, 0), img.shape)
    assert read_meta_info_keys(out) == ['a', 'b', 'c']
    assert (out / 'meta_info.txt').read_text().splitlines()[1] == 'b.png (200,240,3) 0'
    with lmdb.open(str(out), readonly=True, lock=False) as env, env.begin() as txn:
        got = cv2.imdecode(np.frombuffer(txn.get(b'c'), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(got, images['c'])
    assert [p.name for p in tmp_path.iterdir() if 'partial' in p.name] == []


def test_failed_lmdb_write_leaves_nothing(tmp_path):
    out = tmp_path / 'small.lmdb'
    with pytest.raises(lmdb.MapFullError):
        with AtomicLmdb(out, map_size=64 * 1024, compress_level=0) as db:
            for i in range(4):
                db.put(f'k{i}', encode_png(noise(120, 120, seed=i), 0), (120, 120, 3))
    assert list(tmp_path.iterdir()) == []


def test_existing_outputs_are_refused_and_kept(tmp_path):
    hr = tmp_path / 'DIV2K_train_HR'
    hr.mkdir()
    cv2.imwrite(str(hr / '0001.png'), noise(480, 492))
    out = tmp_path / 'out'
    existing = out / 'DIV2K_train_LR_bicubic_X3_sub.lmdb'
    existing.mkdir(parents=True)
    (existing / 'data.mdb').write_bytes(b'made earlier')
    with pytest.raises(PreparationError, match='refusing to overwrite existing output: .*X3_sub.lmdb'):
        prepare_div2k(hr, out, n_workers=1)
    # nothing was written, nothing was changed
    assert sorted(p.name for p in out.iterdir()) == ['DIV2K_train_LR_bicubic_X3_sub.lmdb']
    assert (existing / 'data.mdb').read_bytes() == b'made earlier'
    with pytest.raises(PreparationError, match='must end with .lmdb'):
        AtomicLmdb(tmp_path / 'x.db', 1 << 20)

    gt = tmp_path / 'Set5' / 'GTmod12'
    gt.mkdir(parents=True)
    with pytest.raises(PreparationError, match='GTmod12'):
        prepare_benchmark(hr, tmp_path / 'Set5', n_workers=1)
    assert os.listdir(tmp_path / 'Set5') == ['GTmod12']


def test_lr_only_run_checks_keys_against_the_hr_lmdb(tmp_path):
    hr = tmp_path / 'DIV2K_train_HR'
    hr.mkdir()
    cv2.imwrite(str(hr / '0001.png'), noise(490, 500))  # mod-crop: 480 x 492 -> 1 x 2 sub-images
    made = prepare_div2k(hr, tmp_path, scales=[4], n_workers=1)
    assert {level: count for level, (_, count) in made.items()} == {0: 2, 4: 2}
    made = prepare_div2k(hr, tmp_path, scales=[2], n_workers=1, with_hr=False)
    assert list(made) == [2] and read_meta_info_keys(made[2][0]) == ['0001_s001', '0001_s002']
    cv2.imwrite(str(hr / '0002.png'), noise(480, 480))
    with pytest.raises(PreparationError, match='keys differ'):
        prepare_div2k(hr, tmp_path, scales=[3], n_workers=1, with_hr=False)
    assert not (tmp_path / 'DIV2K_train_LR_bicubic_X3_sub.lmdb').exists()


def test_bad_inputs_name_the_path(tmp_path):
    with pytest.raises(PreparationError, match=f'{tmp_path / "nowhere"}: input folder does not exist'):
        prepare_div2k(tmp_path / 'nowhere', tmp_path / 'out')
    small = tmp_path / 'small'
    small.mkdir()
    cv2.imwrite(str(small / '0001.png'), noise(300, 500))
    with pytest.raises(PreparationError, match='0001.png: 300x492 after mod-crop to 12 is smaller than'):
        prepare_div2k(small, tmp_path / 'out')
    with pytest.raises(PreparationError, match='crop_size = 100: must be a positive multiple of 12'):
        prepare_div2k(small, tmp_path / 'out', crop_size=100)
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('name, words', [
    ('prepare_div2k', ['DIV2K_train_HR.zip', 'DIV2K_train_HR_sub.lmdb', 'DIV2K_train_LR_bicubic_X{2,3,4}_sub.lmdb',
                       'meta_info.txt', 'imresize', '--input', '--output']),
    ('prepare_benchmarks', ['<name>/HR/*.png', 'BSDS100', '<name>/GTmod12/<image>.png', '<name>/LRbicx{s}/<image>.png',
                            'imresize', '--input', '--output']),
])
def test_help_names_inputs_and_outputs(name, words):
    text = ' '.join(load_script(name).build_parser().format_help().split())
    for word in words:
        assert word in text, f'{name} --help does not mention {word}'


def test_script_refusal_is_a_clear_exit_not_a_traceback(tmp_path, capsys):
    (tmp_path / 'DIV2K_train_HR_sub.lmdb').mkdir()
    (tmp_path / 'hr').mkdir()
    with pytest.raises(SystemExit) as exit_info:
        load_script('prepare_div2k').main(['--input', str(tmp_path / 'hr'), '--output', str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith('prepare_div2k.py: error: refusing to overwrite existing output: ')
    assert 'DIV2K_train_HR_sub.lmdb' in err
    with pytest.raises(SystemExit) as exit_info:
        load_script('prepare_benchmarks').main(['--input', str(tmp_path), '--output', str(tmp_path), '--names', 'B100'])
    assert exit_info.value.code == 2
    assert 'no HR images for B100 (looked for B100/HR/ and B100/, BSDS100/HR/' in capsys.readouterr().err


def test_a_broken_image_stops_the_run_and_leaves_no_output(tmp_path):
    hr = tmp_path / 'DIV2K_train_HR'
    hr.mkdir()
    for i in (1, 2, 3):
        cv2.imwrite(str(hr / f'000{i}.png'), noise(480, 480, seed=i))
    data = (hr / '0002.png').read_bytes()
    (hr / '0002.png').write_bytes(data[:len(data) // 3])  # truncated download: the header still reads
    with pytest.raises(PreparationError, match='0002.png: not a readable image'):
        prepare_div2k(hr, tmp_path / 'out', n_workers=2)
    assert os.listdir(tmp_path / 'out') == []
