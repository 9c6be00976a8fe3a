"""Option files are checked before anything is built: each error names the file, the key and the value at fault.

In-process through basicsr's (patched) ``parse_options``, on real LMDBs and image folders; one subprocess shows the
entry point's exit code and that nothing was created. What plain basicsr 1.4.2 says for each case is in docs/errors.md.
"""
import shutil
import subprocess
import sys

import cv2
import pytest

from helpers import make_paired_set, plugin_env, python_cmd
from robust_helpers import make_train_yaml
from srconvnet_plugin.utils.checks import OptionCheckError
from srconvnet_plugin.patches.compat import apply_pipeline_shims

apply_pipeline_shims()
import basicsr.utils.options as basicsr_options  # noqa: E402  (patched by the shims)


@pytest.fixture(scope='module')
def bad_sets(tmp_path_factory, tiny_sr_sets):
    """Real sets that are wrong in one way each."""
    root = tmp_path_factory.mktemp('bad_sets')
    train = tiny_sr_sets['train']
    sets = {
        'other': make_paired_set(root / 'other', ('chelsea', 'coffee', 'rocket', 'camera'), scale=4, gt_size=96),
        'x2': make_paired_set(root / 'x2', ('astronaut', 'chelsea'), scale=2, gt_size=96),
        'small': make_paired_set(root / 'small', ('astronaut', 'chelsea'), scale=4, gt_size=32, lmdb=False),
    }
    sets['no_meta'] = root / 'no_meta.lmdb'
    shutil.copytree(train.lq_lmdb, sets['no_meta'])
    (sets['no_meta'] / 'meta_info.txt').unlink()
    sets['empty_lmdb'] = root / 'empty.lmdb'
    sets['empty_lmdb'].mkdir()
    # a grey GT paired with a colour LQ
    sets['grey_gt'] = root / 'grey_gt'
    shutil.copytree(train.gt, sets['grey_gt'])
    img = cv2.imread(str(train.gt / 'astronaut.png'))
    cv2.imwrite(str(sets['grey_gt'] / 'astronaut.png'), cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    return sets


def parse(tmp_path, monkeypatch, text, name='train.yml'):
    path = tmp_path / name
    path.write_text(text)
    monkeypatch.setattr(sys, 'argv', ['srconvnet-train', '-opt', str(path)])
    return basicsr_options.parse_options(str(tmp_path), is_train=True)


def refused(tmp_path, monkeypatch, text):
    with pytest.raises(OptionCheckError) as info:
        parse(tmp_path, monkeypatch, text)
    message = str(info.value)
    assert message.startswith(f'{tmp_path / "train.yml"}: ')
    return message


def good(sets, **kw):
    return make_train_yaml(sets, 'checks', tb_logger=False, **kw)


def test_a_good_option_file_passes(tmp_path, monkeypatch, tiny_sr_sets):
    opt, _ = parse(tmp_path, monkeypatch, good(tiny_sr_sets))
    assert opt['network_g']['type'] == 'SRConvNet' and opt['datasets']['train']['gt_size'] == 48


def test_unknown_arch_lists_the_registered_ones(tmp_path, monkeypatch, tiny_sr_sets):
    msg = refused(tmp_path, monkeypatch, good(tiny_sr_sets).replace('type: SRConvNet', 'type: SRConvNett'))
    assert "network_g: type: 'SRConvNett' is not a registered arch; registered: " in msg
    assert 'SRConvNet,' in msg and 'EDSR' in msg and 'RRDBNet' in msg


def test_upscale_differs_from_scale(tmp_path, monkeypatch, tiny_sr_sets):
    msg = refused(tmp_path, monkeypatch, good(tiny_sr_sets).replace('  upscale: 4', '  upscale: 2'))
    assert 'network_g: upscale: 2 differs from scale: 4' in msg
    # an arch default counts too: SRConvNet's upscale defaults to 4
    msg = refused(tmp_path, monkeypatch,
                  good(tiny_sr_sets).replace('  upscale: 4\n', '').replace('scale: 4\n', 'scale: 3\n', 1))
    assert 'network_g: upscale: 4 (the default of SRConvNet) differs from scale: 3' in msg


def test_gt_size_not_divisible_by_scale(tmp_path, monkeypatch, tiny_sr_sets):
    msg = refused(tmp_path, monkeypatch, good(tiny_sr_sets).replace('gt_size: 48', 'gt_size: 50'))
    assert 'datasets: train: gt_size: 50 is not divisible by scale: 4' in msg and 'use e.g. 48' in msg


def test_missing_and_nonexistent_dataroots(tmp_path, monkeypatch, tiny_sr_sets):
    train = tiny_sr_sets['train']
    text = good(tiny_sr_sets).replace(f'    dataroot_gt: {train.gt_lmdb}\n', '')
    text = text.replace(f'dataroot_gt: {tiny_sr_sets["val"].gt}', f'dataroot_gt: {tmp_path / "nowhere"}')
    msg = refused(tmp_path, monkeypatch, text)
    assert 'datasets: train: dataroot_gt: missing' in msg
    assert f'datasets: val: dataroot_gt: {tmp_path / "nowhere"} does not exist' in msg  # all problems at once


def test_paths_that_are_not_lmdbs(tmp_path, monkeypatch, tiny_sr_sets, bad_sets):
    train = tiny_sr_sets['train']
    text = good(tiny_sr_sets).replace(f'dataroot_gt: {train.gt_lmdb}', f'dataroot_gt: {train.gt}')
    text = text.replace(f'dataroot_lq: {train.lq_lmdb}', f'dataroot_lq: {bad_sets["empty_lmdb"]}')
    msg = refused(tmp_path, monkeypatch, text)
    assert f'datasets: train: dataroot_gt: {train.gt} is not an LMDB: basicsr needs LMDB folders named *.lmdb' in msg
    assert f'datasets: train: dataroot_lq: {bad_sets["empty_lmdb"]} is not an LMDB: it has no data.mdb' in msg


def test_lmdb_without_meta_info(tmp_path, monkeypatch, tiny_sr_sets, bad_sets):
    text = good(tiny_sr_sets).replace(f'dataroot_lq: {tiny_sr_sets["train"].lq_lmdb}',
                                      f'dataroot_lq: {bad_sets["no_meta"]}')
    msg = refused(tmp_path, monkeypatch, text)
    assert f'datasets: train: dataroot_lq: {bad_sets["no_meta"]} has no meta_info.txt' in msg


def test_gt_and_lq_key_sets_differ(tmp_path, monkeypatch, tiny_sr_sets, bad_sets):
    train, other, val = tiny_sr_sets['train'], bad_sets['other'], tiny_sr_sets['val']
    text = good(tiny_sr_sets).replace(f'dataroot_lq: {train.lq_lmdb}', f'dataroot_lq: {other.lq_lmdb}')
    text = text.replace(f'dataroot_lq: {val.lq}', f'dataroot_lq: {other.lq}')
    msg = refused(tmp_path, monkeypatch, text)
    assert f'datasets: train: dataroot_gt: {train.gt_lmdb} and dataroot_lq: {other.lq_lmdb} hold different images: ' \
           'only in GT: astronaut; only in LQ: camera' in msg
    assert 'datasets: val: dataroot_gt' in msg and 'only in GT: hubble_deep_field, immunohistochemistry; only in ' \
           'LQ: camera, chelsea, coffee, rocket' in msg


def test_lq_sizes_that_are_not_gt_over_scale(tmp_path, monkeypatch, tiny_sr_sets, bad_sets):
    x2 = bad_sets['x2']  # x2 LQ (48x48) for 96x96 GT, used as x4 data
    text = good(tiny_sr_sets).replace(f'dataroot_gt: {tiny_sr_sets["train"].gt_lmdb}', f'dataroot_gt: {x2.gt_lmdb}')
    text = text.replace(f'dataroot_lq: {tiny_sr_sets["train"].lq_lmdb}', f'dataroot_lq: {x2.lq_lmdb}')
    text = text.replace(f'dataroot_gt: {tiny_sr_sets["val"].gt}', f'dataroot_gt: {x2.gt}')
    text = text.replace(f'dataroot_lq: {tiny_sr_sets["val"].lq}', f'dataroot_lq: {x2.lq}')
    msg = refused(tmp_path, monkeypatch, text)
    assert f'datasets: train: dataroot_lq: {x2.lq_lmdb}: LQ sizes are not GT / scale (scale: 4): ' \
           'astronaut (GT 96x96, LQ 48x48), chelsea (GT 96x96, LQ 48x48)' in msg
    # validation too: basicsr crops the GT to scale x LQ (a smaller LQ would silently be scored on a GT corner)
    assert f'datasets: val: dataroot_lq: {x2.lq}: LQ sizes are not GT / scale' in msg


def test_images_smaller_than_gt_size_and_grey_colour_pairs(tmp_path, monkeypatch, tiny_sr_sets, bad_sets):
    small = bad_sets['small']
    text = good(tiny_sr_sets).replace('type: lmdb', 'type: disk')
    text = text.replace(f'dataroot_gt: {tiny_sr_sets["train"].gt_lmdb}', f'dataroot_gt: {small.gt}')
    text = text.replace(f'dataroot_lq: {tiny_sr_sets["train"].lq_lmdb}', f'dataroot_lq: {small.lq}')
    text = text.replace(f'dataroot_gt: {tiny_sr_sets["val"].gt}', f'dataroot_gt: {bad_sets["grey_gt"]}')
    text = text.replace(f'dataroot_lq: {tiny_sr_sets["val"].lq}', f'dataroot_lq: {tiny_sr_sets["train"].lq}')
    msg = refused(tmp_path, monkeypatch, text)
    assert f'datasets: train: gt_size: 48: GT images smaller than the crop in {small.gt}: astronaut (32x32), ' \
           'chelsea (32x32)' in msg
    assert 'datasets: val: dataroot_gt/dataroot_lq: grey and colour images paired: astronaut (GT 1, LQ 3 channels)' \
           in msg


@pytest.mark.slow
def test_the_entry_point_exits_2_before_creating_anything(tmp_path, tiny_sr_sets):
    (tmp_path / 'train.yml').write_text(good(tiny_sr_sets).replace('gt_size: 48', 'gt_size: 50'))
    proc = subprocess.run(python_cmd('-m', 'srconvnet_plugin.train', '-opt', 'train.yml'), cwd=tmp_path,
                          env=plugin_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-2:] == [
        'srconvnet-train: error: train.yml: 1 problem(s) in the options:',
        '  datasets: train: gt_size: 50 is not divisible by scale: 4 (the LQ crop would be 12.5 pixels); use e.g. 48']
    assert sorted(p.name for p in tmp_path.iterdir()) == ['train.yml']
