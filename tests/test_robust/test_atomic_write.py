"""The one atomic writer: complete files or none, no silent overwrite, nothing left behind on failure."""
import os
import stat

import pytest

from srconvnet.atomic_write import atomic_write, leftover_temp_files


def test_writes_bytes_and_callables_with_plain_open_permissions(tmp_path):
    target = tmp_path / 'sub' / 'a.bin'
    atomic_write(target, b'abc')
    assert target.read_bytes() == b'abc'
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask

    def write(tmp):
        with open(tmp, 'w', encoding='utf-8') as f:
            f.write('replaced')

    atomic_write(target, write)
    assert target.read_text() == 'replaced'
    assert os.listdir(target.parent) == ['a.bin']


def test_overwrite_false_keeps_the_existing_file(tmp_path):
    target = tmp_path / 'keep.pth'
    target.write_bytes(b'old')
    with pytest.raises(FileExistsError, match='keep.pth exists'):
        atomic_write(target, b'new', overwrite=False)
    assert target.read_bytes() == b'old' and os.listdir(tmp_path) == ['keep.pth']
    fresh = tmp_path / 'fresh.pth'
    atomic_write(fresh, b'new', overwrite=False)
    assert fresh.read_bytes() == b'new' and sorted(os.listdir(tmp_path)) == ['fresh.pth', 'keep.pth']


def test_file_appearing_while_writing_is_not_overwritten(tmp_path):
    target = tmp_path / 'race.png'

    def write(tmp):
        target.write_bytes(b'someone else')  # appears between the check and the final link
        with open(tmp, 'wb') as f:
            f.write(b'ours')

    with pytest.raises(FileExistsError, match='appeared while writing'):
        atomic_write(target, write, overwrite=False)
    assert target.read_bytes() == b'someone else' and os.listdir(tmp_path) == ['race.png']


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / 'net_g_5.pth'
    target.write_bytes(b'good')

    def write(tmp):
        with open(tmp, 'wb') as f:
            f.write(b'half')
        raise OSError(28, 'No space left on device')

    with pytest.raises(OSError, match='No space left'):
        atomic_write(target, write)
    assert target.read_bytes() == b'good' and leftover_temp_files(tmp_path) == []
    assert os.listdir(tmp_path) == ['net_g_5.pth']


def test_leftovers_of_checkpoint_writes_are_found(tmp_path):
    for name in ('.net_g_10.pth.x1y2.tmp', '.20.state.abc.tmp', '.net_g_10.safetensors.q.tmp', '.notes.txt.z.tmp',
                 'net_g_10.pth'):
        (tmp_path / name).write_bytes(b'')
    assert [os.path.basename(p) for p in leftover_temp_files(tmp_path)] == [
        '.20.state.abc.tmp', '.net_g_10.pth.x1y2.tmp', '.net_g_10.safetensors.q.tmp']
