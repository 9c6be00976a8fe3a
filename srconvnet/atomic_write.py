"""The one way this plugin writes a file: complete or not at all, and never over a file it was told to keep.

Every writer (checkpoints and training states, converted weights, upscaled images, ONNX files, comparison tables and
plots) goes through :func:`atomic_write`: the data is written to ``.<name>.<random>.tmp`` beside the target, flushed
and fsynced, given the permissions a plain ``open()`` would give it, then renamed onto the target (atomic on POSIX
and Windows) and the folder is fsynced. A killed process or a full disk leaves either the old file or the new one,
plus at most a temporary file that :func:`leftover_temp_files` finds.
"""
import contextlib
import io
import os
import os.path as osp
import re
import tempfile

#: the extensions of checkpoint files, whose leftovers ``--auto_resume`` removes
CHECKPOINT_EXTENSIONS = ('pth', 'safetensors', 'state')


def _file_mode():
    """The mode ``open()`` gives a new file under the current umask (mkstemp makes 0600 files)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(folder):
    """Make a rename inside ``folder`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write, overwrite=True):
    """Create or replace ``path`` with what ``write(tmp_path)`` writes into a temporary file beside it.

    ``write`` may also be ``bytes`` (or any buffer), written as they are. With ``overwrite=False`` an existing
    ``path`` is never replaced: :class:`FileExistsError` is raised before anything is written, and also when the
    file appears while writing (the final step is then a hard link, which fails if the target exists). On any error
    the temporary file is removed and the error is raised; ``path`` is as it was. Returns ``path``.
    """
    path = os.fspath(path)
    folder, name = osp.split(osp.abspath(path))
    if not overwrite and osp.lexists(path):
        raise FileExistsError(f'{path} exists (refusing to overwrite it)')
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{name}.', suffix='.tmp')
    try:
        if callable(write):
            os.close(fd)
            write(tmp)
            fd = os.open(tmp, os.O_RDONLY)
        else:
            with memoryview(write) as view:
                done = 0
                while done < len(view):
                    done += os.write(fd, view[done:])
        if hasattr(os, 'fchmod'):
            os.fchmod(fd, _file_mode())
        os.fsync(fd)
        os.close(fd)
        fd = None
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except BaseException:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(folder)
    return path


def _link_new(tmp, path):
    """Move ``tmp`` to ``path`` only if ``path`` does not exist (atomically where hard links work)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise FileExistsError(f'{path} exists (it appeared while writing; refusing to overwrite it)') from None
    except OSError:  # no hard links on this file system: check, then rename
        if osp.lexists(path):
            raise FileExistsError(f'{path} exists (refusing to overwrite it)') from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def leftover_temp_files(folder, extensions=CHECKPOINT_EXTENSIONS):
    """Temporary files of interrupted :func:`atomic_write` calls for files with these ``extensions`` in ``folder``
    (full paths, sorted): they look like ``.net_g_10.pth.<random>.tmp``."""
    if not osp.isdir(folder):
        return []
    pattern = re.compile(r'^\..+\.(%s)\.[^.]+\.tmp$' % '|'.join(map(re.escape, extensions)))
    return sorted(osp.join(folder, n) for n in os.listdir(folder) if pattern.match(n))


def atomic_save(obj, path, overwrite=True):
    """``torch.save(obj, path)`` that either replaces ``path`` with a complete file or leaves it as it was
    (``overwrite=False``: never replaces an existing file, see :func:`atomic_write`).

    The data is serialised in memory first (so a write error surfaces as the ``OSError`` it is, e.g. ENOSPC, which
    torch's zip writer would report as "unexpected pos"), then written by :func:`atomic_write`.
    """
    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, buffer.getbuffer(), overwrite=overwrite)
