"""Data faults named: an undecodable image or LMDB record, a missing LMDB key, or any failure of a GT/LQ pair raises
:class:`DataFaultError` naming the dataset, the record or file, and the fault (basicsr ends in ``'NoneType' object has
no attribute 'astype'`` or a ``TypeError`` naming nothing).

``compat.apply_pipeline_shims`` wraps basicsr's ``FileClient.get``, ``imfrombytes`` (as ``paired_image_dataset`` sees
it) and ``PairedImageDataset.__getitem__`` with these.
"""
import functools
import threading


class DataFaultError(ValueError):
    """An image or LMDB record that cannot be used; the message names the dataset, the key or file, and the fault."""


#: what the FileClient of this thread read last: (client_key, what) for the decoder's error message
_LAST_READ = threading.local()


def wrap_file_client_get(_orig):

    @functools.wraps(_orig)
    def get(self, filepath, client_key='default'):
        """Wraps ``FileClient.get``: remembers what was read (for :func:`checked_imfrombytes`) and names an LMDB key
        that is missing (basicsr passes ``None`` on to ``np.frombuffer``: "a bytes-like object is required")."""
        client = getattr(self, 'client', None)
        envs = getattr(client, '_client', None)
        if envs is not None and client_key in envs:
            what = f'{client_key} record {filepath!r} of the LMDB {envs[client_key].path()}'
        else:
            what = f'{client_key} image {filepath}'
        _LAST_READ.what = what
        value = _orig(self, filepath, client_key)
        if value is None:
            raise DataFaultError(f'{what}: no such key in the LMDB')
        return value

    return get


def checked_imfrombytes(_orig):

    @functools.wraps(_orig)
    def imfrombytes(content, flag='color', float32=False):
        """Wraps basicsr's ``imfrombytes``: bytes OpenCV cannot decode (corrupt record, truncated file) raise an error
        naming the record or file, instead of ``'NoneType' object has no attribute 'astype'``."""
        img = _orig(content, flag, float32=False)
        if img is None:
            what = getattr(_LAST_READ, 'what', 'image')
            raise DataFaultError(f'{what}: cannot be decoded ({len(content)} bytes): the data is corrupt, truncated or '
                                 'not an image')
        return img.astype('float32') / 255. if float32 else img

    return imfrombytes


def wrap_paired_getitem(_orig):

    @functools.wraps(_orig)
    def __getitem__(self, index):
        """Wraps ``PairedImageDataset.__getitem__``: any failure names the dataset and the GT/LQ pair (basicsr's
        size-mismatch error, for one, prints a tuple and names no file)."""
        try:
            return _orig(self, index)
        except DataFaultError as e:
            raise DataFaultError(f'datasets: {self.opt.get("name")}: {e}') from e
        except Exception as e:
            pair = self.paths[index]
            detail = ''.join(map(str, e.args)) or repr(e)  # (basicsr's scale-mismatch message is a 2-tuple)
            raise DataFaultError(f'datasets: {self.opt.get("name")}: GT {pair.get("gt_path")}, LQ '
                                 f'{pair.get("lq_path")}: {e.__class__.__name__}: {detail}') from e

    return __getitem__
