"""Data preparation for the paper's protocol: DIV2K sub-image LMDBs for training, mod-cropped benchmark folders.

What the option files in ``options/train/SRConvNet`` and ``options/test/SRConvNet`` read, made from the official
archives (``scripts/data_preparation/prepare_div2k.py`` and ``prepare_benchmarks.py`` are thin command lines over
this module):

* ``prepare_div2k``: ``DIV2K_train_HR/0001.png ...`` (as extracted from ``DIV2K_train_HR.zip``) →
  ``DIV2K_train_HR_sub.lmdb`` and ``DIV2K_train_LR_bicubic_X{s}_sub.lmdb``. Each HR image is mod-cropped to a multiple
  of 12 (so one HR LMDB serves x2, x3 and x4), its bicubic LR is made from the *whole* image with BasicSR's
  MATLAB-compatible ``imresize`` (no seams at sub-image borders), and both are cut into BasicSR's 480x480 sub-images
  with step 240 (LR: 480/s with step 240/s, the same positions). Keys are ``0001_s001`` ... in every LMDB.
* ``prepare_benchmark``: a folder of HR images → ``GTmod12/`` and ``LRbicx{s}/`` (BasicSR's benchmark layout).

Why sub-images rather than whole images in the LMDB: BasicSR's ``PairedImageDataset`` decodes the whole stored image
and converts it to float32 before it crops the 256 patch. For a 2040x1356 DIV2K image that was 40-115 ms per sample
here (PNG level 0-1) against about 11 ms for a 480x480 sub-image; at a global batch of 128 whole images would make data
loading, not the GPU, the bottleneck. The price is a small change in which patches are drawn (see docs/reproducing.md).

Every output is written under a temporary name in the destination folder and renamed into place at the end, and an
existing output is refused (``PreparationError``) before any work starts: nothing made earlier is overwritten.
"""
import math
import mmap
import os
import os.path as osp
import shutil
import tempfile
from contextlib import ExitStack, closing
from multiprocessing import get_context

import cv2
import numpy as np
from tqdm import tqdm

from srconvnet.atomic_write import atomic_write, fsync_dir

MOD = 12  # lcm(2, 3, 4): HR sizes divisible by every scale (BasicSR's GTmod12)
IMAGE_EXTENSIONS = ('.png', '.bmp', '.jpg', '.jpeg', '.tif', '.tiff', '.ppm')
BENCHMARKS = ('Set5', 'Set14', 'B100', 'Urban100', 'Manga109')
# folder names under which the benchmark archives in circulation ship each set
BENCHMARK_ALIASES = {'B100': ('B100', 'BSDS100', 'BSD100')}


class PreparationError(RuntimeError):
    """Input or output that cannot be used; the message names the path at fault and what to do."""


# ----------------------------------------------------------------------------------------------------------------
# images
# ----------------------------------------------------------------------------------------------------------------
def read_image(path):
    """Read ``path`` as an 8-bit BGR image (``cv2.IMREAD_COLOR``: what basicsr's ``imfrombytes`` decodes too)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise PreparationError(f'{path}: not a readable image')
    return img


def encode_png(img, compress_level):
    """PNG bytes of ``img`` at zlib level ``compress_level`` (what basicsr's LMDB maker stores)."""
    ok, buf = cv2.imencode('.png', img, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise PreparationError(f'cannot encode an image of shape {img.shape} as PNG')
    return buf.tobytes()


def bicubic_resize(img, factor):
    """The package's one bicubic resize: the 8-bit image ``img`` (HWC or HW) resized by ``factor`` as MATLAB's
    ``imresize`` does (antialiased when shrinking), with BasicSR's ``basicsr.utils.matlab_functions.imresize`` on the
    image in float32 [0, 1], rounded and clamped back to uint8. uint8 in, uint8 out."""
    from basicsr.utils.matlab_functions import imresize
    if img.dtype != np.uint8:
        raise TypeError(f'bicubic_resize takes an 8-bit image, got {img.dtype}')
    out = imresize(img.astype(np.float32) / 255., factor)
    return np.clip(np.round(out * 255.), 0, 255).astype(np.uint8)


def bicubic_lr(img, scale):
    """Bicubic LR of the uint8 image ``img`` (HWC) by 1/``scale`` (:func:`bicubic_resize`); its height and width must
    be multiples of ``scale`` (:func:`mod_crop` first), so that the LR is exactly 1/``scale`` of it."""
    if img.shape[0] % scale or img.shape[1] % scale:
        raise ValueError(f'image of size {img.shape[:2]} is not divisible by the scale {scale}: mod-crop it first')
    return bicubic_resize(img, 1 / scale)


def mod_crop(img, modulus=MOD):
    """Crop the bottom/right of ``img`` so height and width are multiples of ``modulus`` (``basicsr`` ``mod_crop``)."""
    from basicsr.data.transforms import mod_crop as _mod_crop
    return _mod_crop(img, modulus)


def list_images(folder, extensions=IMAGE_EXTENSIONS):
    """Sorted image files directly inside ``folder``; a missing or empty folder is a ``PreparationError``."""
    if not osp.isdir(folder):
        raise PreparationError(f'{folder}: input folder does not exist')
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(extensions) and not f.startswith('.'))
    if not files:
        raise PreparationError(f'{folder}: no images ({", ".join(extensions)}) in this folder')
    return [osp.join(folder, f) for f in files]


def image_size(path):
    """(height, width) of the image file ``path`` from its header (Pillow reads no pixels)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            w, h = im.size
    except OSError as e:
        raise PreparationError(f'{path}: not a readable image ({e})') from e
    return h, w


# ----------------------------------------------------------------------------------------------------------------
# sub-images (BasicSR's scripts/data_preparation/extract_subimages.py, per scale)
# ----------------------------------------------------------------------------------------------------------------
def subimage_starts(length, crop_size, step, thresh_size=0):
    """Top (or left) coordinates of the sub-images along one axis, exactly as BasicSR's ``extract_subimages``: every
    ``step`` from 0, plus a last one flush with the end when more than ``thresh_size`` pixels would be left over."""
    if length < crop_size:
        raise ValueError(f'length {length} is smaller than the sub-image size {crop_size}')
    starts = list(range(0, length - crop_size + 1, step))
    if length - (starts[-1] + crop_size) > thresh_size:
        starts.append(length - crop_size)
    return starts


def subimage_boxes(height, width, crop_size, step, thresh_size=0):
    """``[(top, left), ...]`` of the sub-images of a ``height`` x ``width`` image, in BasicSR's order (row-major)."""
    return [(y, x) for y in subimage_starts(height, crop_size, step, thresh_size)
            for x in subimage_starts(width, crop_size, step, thresh_size)]


# ----------------------------------------------------------------------------------------------------------------
# LMDB
# ----------------------------------------------------------------------------------------------------------------
def png_size_bound(height, width, channels=3):
    """Upper bound, in bytes, of a PNG of an 8-bit ``height`` x ``width`` x ``channels`` image at any zlib level.

    Raw scanlines (one filter byte per row) through zlib's general deflate bound (``deflateBound`` for non-default
    parameters: n + n/8 + n/64 + 5, plus the 6-byte zlib wrapper), 12 bytes per IDAT chunk of at least 1 KiB,
    signature + IHDR + IEND, and 1 KiB for ancillary chunks.
    """
    raw = height * (width * channels + 1)
    deflated = raw + (raw + 7) // 8 + (raw + 63) // 64 + 5 + 6
    return deflated + 12 * math.ceil(deflated / 1024) + 8 + 25 + 12 + 1024


def lmdb_map_size(shapes, page_size=mmap.PAGESIZE):
    """LMDB ``map_size`` that holds one PNG record per ``(h, w, c)`` in ``shapes``, computed (not guessed).

    A value larger than half a page lives in overflow pages: ``ceil((16-byte page header + size) / page)`` of them;
    the size is bounded by :func:`png_size_bound`. One more page per record covers the leaf/branch pages and the
    copy-on-write pages of the periodic commits (a record's node takes under 64 bytes), 64 pages cover the meta pages
    and the free list. The bound is loose for compressed PNGs; on Linux the map is address space, the file grows only
    as pages are written.
    """
    total = 0
    for h, w, c in shapes:
        total += math.ceil((16 + png_size_bound(h, w, c)) / page_size) * page_size + page_size
    return total + 64 * page_size


def read_meta_info_keys(lmdb_path):
    """Keys listed in ``<lmdb_path>/meta_info.txt`` (the file name without extension), in order."""
    meta = osp.join(lmdb_path, 'meta_info.txt')
    if not osp.isfile(meta):
        raise PreparationError(f'{meta}: missing; {lmdb_path} was not made by a BasicSR LMDB maker')
    with open(meta, encoding='ascii') as f:
        return [line.split(' ')[0].rsplit('.', 1)[0] for line in f if line.strip()]


def refuse_existing(paths):
    """Raise ``PreparationError`` naming every path in ``paths`` that already exists (checked before any work)."""
    existing = [str(p) for p in paths if osp.lexists(p)]
    if existing:
        raise PreparationError('refusing to overwrite existing output: ' + ', '.join(existing) +
                               ' (delete it or choose another output folder)')


class AtomicLmdb:
    """Write an LMDB with BasicSR's ``LmdbMaker`` (same ``data.mdb`` records and ``meta_info.txt`` lines) into a
    temporary ``.lmdb`` folder beside ``lmdb_path`` and rename it into place when complete.

    Unlike ``LmdbMaker``/``make_lmdb_from_imgs``, an existing ``lmdb_path`` raises ``PreparationError`` instead of
    ``sys.exit(1)``, and ``map_size`` is the caller's computed size (see :func:`lmdb_map_size`). If writing fails,
    the temporary folder is removed and nothing appears at ``lmdb_path``.
    """

    def __init__(self, lmdb_path, map_size, compress_level=1, batch=5000):
        lmdb_path = str(lmdb_path)
        if not lmdb_path.endswith('.lmdb'):
            raise PreparationError(f'{lmdb_path}: an LMDB path must end with .lmdb (BasicSR reads it by that name)')
        refuse_existing([lmdb_path])
        self.lmdb_path = lmdb_path
        self.map_size = int(map_size)
        self.compress_level = compress_level
        self.batch = batch
        self._tmp_dir = self.tmp_path = self.maker = None
        self.count = 0

    def __enter__(self):
        from basicsr.utils.lmdb_util import LmdbMaker
        parent = osp.dirname(osp.abspath(self.lmdb_path))
        os.makedirs(parent, exist_ok=True)
        self._tmp_dir = tempfile.mkdtemp(prefix=f'.{osp.basename(self.lmdb_path)}.', suffix='.partial', dir=parent)
        self.tmp_path = osp.join(self._tmp_dir, 'partial.lmdb')
        try:
            self.maker = LmdbMaker(self.tmp_path, map_size=self.map_size, batch=self.batch,
                                   compress_level=self.compress_level)
        except BaseException:
            shutil.rmtree(self._tmp_dir, ignore_errors=True)
            raise
        return self

    def put(self, key, png_bytes, shape):
        """Store ``png_bytes`` under ``key`` with meta line ``<key>.png (h,w,c) <compress_level>``."""
        self.maker.put(png_bytes, key, shape)
        self.count += 1

    def __exit__(self, exc_type, exc, tb):
        try:
            if self.maker is not None and exc_type is None:
                self.maker.close()  # commit
                os.rename(self.tmp_path, self.lmdb_path)  # fails (nothing lost) if lmdb_path appeared meanwhile
                fsync_dir(osp.dirname(osp.abspath(self.lmdb_path)))
            elif self.maker is not None:  # LmdbMaker.close would commit a failed transaction (MDB_BAD_TXN)
                self.maker.txn.abort()
                self.maker.env.close()
                self.maker.txt_file.close()
        finally:
            if self._tmp_dir is not None:
                shutil.rmtree(self._tmp_dir, ignore_errors=True)
        return False


# ----------------------------------------------------------------------------------------------------------------
# DIV2K
# ----------------------------------------------------------------------------------------------------------------
def div2k_output_paths(out_dir, scales):
    """``{0: HR LMDB, s: LR LMDB for each scale}`` under ``out_dir`` (BasicSR's names for the sub-image LMDBs)."""
    paths = {0: osp.join(out_dir, 'DIV2K_train_HR_sub.lmdb')}
    for s in scales:
        paths[s] = osp.join(out_dir, f'DIV2K_train_LR_bicubic_X{s}_sub.lmdb')
    return paths


def _worker_init():
    # one process per core: keep torch (imresize) from starting its own thread pool in each (OpenCV: see _map)
    import torch
    torch.set_num_threads(1)


def _forked_pool(n_workers):
    """A pool of ``n_workers`` forked processes with one OpenCV thread each. OpenCV's thread count is set here,
    before the fork, and restored after it: a forked child of a process whose OpenCV thread pool has run cannot
    change it (``cv2.setNumThreads`` waits forever in the child for the parent's pool threads)."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        return get_context().Pool(n_workers, initializer=_worker_init)
    finally:
        cv2.setNumThreads(threads)


def _map(function, jobs, n_workers, desc):
    """``function`` over ``jobs`` in ``n_workers`` processes (1 or None on one core: in this one), in order, with a
    progress bar; results are yielded as they come (the pool is terminated when the generator ends or is closed)."""
    n_workers = min(n_workers or os.cpu_count() or 1, len(jobs)) or 1
    pool = _forked_pool(n_workers) if n_workers > 1 else None
    try:
        results = pool.imap(function, jobs) if pool else map(function, jobs)
        yield from tqdm(results, total=len(jobs), unit='img', desc=desc)
    finally:
        if pool:
            pool.terminate()


def _process_div2k_image(job):
    """Worker: one HR image → {0: [(key, png, shape)], s: [...]} for its sub-images at every scale."""
    path, size_from_header, scales, crop_size, step, thresh_size, compress_level, with_hr = job
    stem = osp.splitext(osp.basename(path))[0]
    hr = mod_crop(read_image(path), MOD)
    if hr.shape[:2] != size_from_header:  # keys and map sizes were computed from the header
        raise PreparationError(f'{path}: decodes to {hr.shape[:2]} after mod-crop, its header says {size_from_header}')
    boxes = subimage_boxes(hr.shape[0], hr.shape[1], crop_size, step, thresh_size)
    out = {}
    levels = ([(0, hr, 1)] if with_hr else []) + [(s, bicubic_lr(hr, s), s) for s in scales]
    for level, img, s in levels:
        size = crop_size // s
        records = []
        for index, (top, left) in enumerate(boxes, start=1):
            sub = np.ascontiguousarray(img[top // s:top // s + size, left // s:left // s + size])
            records.append((f'{stem}_s{index:03d}', encode_png(sub, compress_level), sub.shape))
        out[level] = records
    return out


def prepare_div2k(hr_dir, out_dir, scales=(2, 3, 4), crop_size=480, step=240, thresh_size=0, compress_level=1,
                  n_workers=None, with_hr=True):
    """Make the training LMDBs of the option files from the official DIV2K HR folder.

    Args:
        hr_dir: folder with the HR images (``DIV2K_train_HR`` from ``DIV2K_train_HR.zip``: 0001.png ... 0800.png).
        out_dir: where ``DIV2K_train_HR_sub.lmdb`` and ``DIV2K_train_LR_bicubic_X{s}_sub.lmdb`` are written.
        scales: LR scales to make.
        crop_size, step, thresh_size: HR sub-images (BasicSR: 480, 240, 0); must be multiples of 12.
        compress_level: PNG zlib level of the stored records (BasicSR's LMDB maker: 1).
        n_workers: processes (default: all cores); 1 runs in this process.
        with_hr: also write the HR LMDB. ``False`` adds LR LMDBs beside an existing HR LMDB; its keys must match.

    Returns:
        dict ``{0 or scale: (lmdb path, number of records)}``.
    """
    scales = tuple(int(s) for s in scales)
    for name, value in (('crop_size', crop_size), ('step', step)):
        if value <= 0 or value % MOD:
            raise PreparationError(f'{name} = {value}: must be a positive multiple of {MOD} so that every scale in '
                                   '2, 3, 4 cuts the LR at the same places')
    bad = [s for s in scales if s not in (2, 3, 4)]
    if bad or not scales:
        raise PreparationError(f'scales {list(scales)}: choose among 2, 3, 4')
    paths = div2k_output_paths(out_dir, scales)
    if not with_hr:
        del paths[0]
    refuse_existing(paths.values())
    nested = osp.join(hr_dir, 'DIV2K_train_HR')
    if osp.isdir(nested):
        raise PreparationError(f'{hr_dir}: holds DIV2K_train_HR/; pass that folder ({nested}) as the input')
    files = [p for p in list_images(hr_dir) if p.lower().endswith('.png')]
    if not files:
        raise PreparationError(f'{hr_dir}: no PNG images (DIV2K_train_HR holds 0001.png ... 0800.png)')

    # shapes from the PNG headers → keys and computed map sizes, before any pixel is decoded
    keys, shapes, sizes = [], {level: [] for level in paths}, []
    for path in files:
        h, w = image_size(path)
        h, w = h - h % MOD, w - w % MOD
        sizes.append((h, w))
        if min(h, w) < crop_size:
            raise PreparationError(f'{path}: {h}x{w} after mod-crop to {MOD} is smaller than the sub-image size '
                                   f'{crop_size}; pass a smaller --crop-size or remove the image')
        stem = osp.splitext(osp.basename(path))[0]
        n = len(subimage_boxes(h, w, crop_size, step, thresh_size))
        keys.extend(f'{stem}_s{i:03d}' for i in range(1, n + 1))
        for level in shapes:
            size = crop_size // (level or 1)
            shapes[level].extend([(size, size, 3)] * n)
    hr_path = div2k_output_paths(out_dir, ())[0]
    if not with_hr:
        if not osp.isdir(hr_path):
            raise PreparationError(f'{hr_path}: missing; the LR LMDBs need the HR LMDB beside them (drop --no-hr)')
        if read_meta_info_keys(hr_path) != keys:
            raise PreparationError(f'{hr_path}: its keys differ from the sub-images of {hr_dir} with crop_size '
                                   f'{crop_size}, step {step}; GT and LQ LMDBs must have identical keys')

    jobs = [(p, size, scales, crop_size, step, thresh_size, compress_level, with_hr) for p, size in zip(files, sizes)]
    writers = {level: AtomicLmdb(path, lmdb_map_size(shapes[level]), compress_level) for level, path in paths.items()}
    with ExitStack() as stack:  # on any error every LMDB is aborted and removed, none appears
        for w in writers.values():
            stack.enter_context(w)
        results = stack.enter_context(closing(_map(_process_div2k_image, jobs, n_workers, 'DIV2K sub-images')))
        for result in results:
            for level, records in result.items():
                for key, png, shape in records:
                    writers[level].put(key, png, shape)
    return {level: (w.lmdb_path, w.count) for level, w in writers.items()}


# ----------------------------------------------------------------------------------------------------------------
# benchmarks
# ----------------------------------------------------------------------------------------------------------------
def find_benchmark_hr(root, name):
    """HR folder of benchmark ``name`` under ``root``: ``<root>/<name>/HR`` (the benchmark archive used by EDSR and
    most SR papers) or ``<root>/<name>`` holding the images; B100 is also found as BSDS100 or BSD100."""
    for alias in BENCHMARK_ALIASES.get(name, (name, )):
        for folder in (osp.join(root, alias, 'HR'), osp.join(root, alias)):
            if osp.isdir(folder) and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in os.listdir(folder)):
                return folder
    raise PreparationError(f'{root}: no HR images for {name} (looked for '
                           + ', '.join(f'{a}/HR/ and {a}/' for a in BENCHMARK_ALIASES.get(name, (name, ))) + ')')


def benchmark_output_paths(out_dir, scales):
    """``{0: <out_dir>/GTmod12, s: <out_dir>/LRbicx{s}}``: BasicSR's benchmark folders."""
    return {0: osp.join(out_dir, f'GTmod{MOD}'), **{s: osp.join(out_dir, f'LRbicx{s}') for s in scales}}


def _process_benchmark_image(job):
    """Worker: one HR image → (stem, GTmod12 PNG, {scale: LR PNG})."""
    path, scales = job
    gt = mod_crop(read_image(path), MOD)
    if min(gt.shape[:2]) == 0:
        raise PreparationError(f'{path}: smaller than {MOD} pixels, nothing is left after mod-crop')
    stem = osp.splitext(osp.basename(path))[0]
    return stem, encode_png(gt, 3), {s: encode_png(bicubic_lr(gt, s), 3) for s in scales}


def prepare_benchmark(hr_dir, out_dir, scales=(2, 3, 4), n_workers=None):
    """Make ``<out_dir>/GTmod12/<name>.png`` (HR mod-cropped to 12) and ``<out_dir>/LRbicx{s}/<name>.png`` (MATLAB
    bicubic of GTmod12) from the HR images in ``hr_dir``. Returns the list of image names written."""
    scales = tuple(int(s) for s in scales)
    outputs = benchmark_output_paths(out_dir, scales)
    refuse_existing(outputs.values())
    files = list_images(hr_dir)
    stems = [osp.splitext(osp.basename(p))[0] for p in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise PreparationError(f'{hr_dir}: several files share the names {dupes} (different extensions)')
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(osp.abspath(out_dir))}.', suffix='.partial', dir=out_dir)
    try:
        for level in outputs:
            os.makedirs(osp.join(tmp, str(level)))
        jobs = [(p, scales) for p in files]
        with closing(_map(_process_benchmark_image, jobs, n_workers, osp.basename(out_dir))) as results:
            for stem, gt_png, lr_pngs in results:
                for level, png in ((0, gt_png), *lr_pngs.items()):
                    atomic_write(osp.join(tmp, str(level), stem + '.png'), png, overwrite=False)
        refuse_existing(outputs.values())
        for level, final in outputs.items():
            os.rename(osp.join(tmp, str(level)), final)
        fsync_dir(osp.abspath(out_dir))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return stems


# ----------------------------------------------------------------------------------------------------------------
# real-world training: Real-ESRGAN's HR data for RealESRGANDataset (meta_info file, multiscale DF2K, sub-images)
# ----------------------------------------------------------------------------------------------------------------
#: Real-ESRGAN's scripts/generate_multiscale_DF2K.py: three downscaled copies, and one whose shortest edge is 400
MULTISCALE_FACTORS = (0.75, 0.5, 1 / 3)
MULTISCALE_SHORTEST_EDGE = 400
#: Real-ESRGAN's scripts/extract_subimages.py: 400x400 sub-images every 200 pixels, PNG level 3
REALWORLD_CROP, REALWORLD_STEP, REALWORLD_PNG_LEVEL = 400, 200, 3


def _decodes(path):
    """Worker: ``path`` if OpenCV decodes it (what basicsr's ``imfrombytes`` will do), else a ``PreparationError``
    message naming it."""
    try:
        read_image(path)
    except PreparationError as e:
        return str(e)
    return None


def write_meta_info(folders, root, meta_info, n_workers=None):
    """The ``meta_info`` file of ``RealESRGANDataset``: one line per image of ``folders`` (sorted, not recursive),
    the path relative to ``root`` (the option file's ``dataroot_gt``), as Real-ESRGAN's
    ``scripts/generate_meta_info.py`` writes it with ``--check``.

    Every image is decoded first (in ``n_workers`` processes); images that do not decode are refused by name and
    nothing is written. An existing ``meta_info`` is refused; the file appears complete or not at all.
    Returns the number of lines written.
    """
    refuse_existing([meta_info])
    root = osp.abspath(root)
    files = []
    for folder in folders:
        inside = osp.relpath(osp.abspath(folder), root)
        if inside == os.pardir or inside.startswith(os.pardir + os.sep):
            raise PreparationError(f'{folder}: not inside the root {root}; meta_info paths are relative to the root '
                                   '(dataroot_gt), so every input folder must be under it')
        files.extend(list_images(folder))
    bad = [message for message in _map(_decodes, files, n_workers, 'meta_info') if message]
    if bad:
        more = f' ... ({len(bad)} in all)' if len(bad) > 5 else ''
        raise PreparationError('images that cannot be decoded (remove or replace them): ' + '; '.join(bad[:5]) + more)
    lines = [osp.relpath(osp.abspath(f), root).replace(os.sep, '/') for f in files]
    os.makedirs(osp.dirname(osp.abspath(meta_info)), exist_ok=True)
    atomic_write(meta_info, ''.join(f'{line}\n' for line in lines).encode('utf-8'), overwrite=False)
    return len(lines)


def _write_folder(out_dir, items, function, n_workers, desc):
    """Run ``function(job) -> [(name, png bytes), ...]`` over ``items`` into a temporary folder beside ``out_dir``
    that is renamed to ``out_dir`` when complete (an existing ``out_dir`` is refused). Returns the names written."""
    refuse_existing([out_dir])
    parent = osp.dirname(osp.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(osp.abspath(out_dir))}.', suffix='.partial', dir=parent)
    try:
        written = []
        with closing(_map(function, items, n_workers, desc)) as results:
            for records in results:
                for name, png in records:
                    atomic_write(osp.join(tmp, name), png, overwrite=False)
                    written.append(name)
        refuse_existing([out_dir])
        os.rename(tmp, out_dir)
        fsync_dir(parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return written


def multiscale_sizes(width, height, factors=MULTISCALE_FACTORS, shortest_edge=MULTISCALE_SHORTEST_EDGE):
    """``[(w, h), ...]``: the sizes of Real-ESRGAN's multiscale copies of a ``width`` x ``height`` image (each factor,
    truncated, then the one whose shortest edge is ``shortest_edge``)."""
    sizes = [(int(width * f), int(height * f)) for f in factors]
    if width < height:
        sizes.append((shortest_edge, int(shortest_edge * height / width)))
    else:
        sizes.append((int(shortest_edge * width / height), shortest_edge))
    return sizes


def _multiscale_image(path):
    """Worker: the multiscale copies of one image, ``<stem>T<i>.png`` (Pillow's Lanczos, as Real-ESRGAN)."""
    from PIL import Image
    problem = _decodes(path)
    if problem:
        raise PreparationError(problem)
    stem = osp.splitext(osp.basename(path))[0]
    with Image.open(path) as im:
        im = im.convert('RGB')
        records = []
        for index, size in enumerate(multiscale_sizes(*im.size)):
            rgb = np.asarray(im.resize(size, resample=Image.LANCZOS))
            records.append((f'{stem}T{index}.png', encode_png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), 3)))
    return records


def make_multiscale(hr_dir, out_dir, n_workers=None):
    """Real-ESRGAN's multiscale DF2K: for each image of ``hr_dir``, copies downscaled by 0.75, 1/2 and 1/3 and one
    whose shortest edge is 400 (``<stem>T0.png`` ... ``<stem>T3.png`` in ``out_dir``, written as a whole or not at
    all). Returns the names written."""
    return _write_folder(out_dir, list_images(hr_dir), _multiscale_image, n_workers, 'multiscale')


def _subimages(job):
    """Worker: the ``crop`` x ``crop`` sub-images of one image, ``<stem>_s<index>.png`` (none if it is smaller)."""
    path, crop, step = job
    img = read_image(path)
    h, w = img.shape[:2]
    if min(h, w) < crop:
        return []
    stem = osp.splitext(osp.basename(path))[0]
    return [(f'{stem}_s{i:03d}.png', encode_png(np.ascontiguousarray(img[y:y + crop, x:x + crop]), REALWORLD_PNG_LEVEL))
            for i, (y, x) in enumerate(subimage_boxes(h, w, crop, step), start=1)]


def make_subimages(hr_dir, out_dir, crop_size=REALWORLD_CROP, step=REALWORLD_STEP, n_workers=None):
    """Real-ESRGAN's ``extract_subimages.py``: ``crop_size`` sub-images every ``step`` pixels (and one flush with
    each border), ``<stem>_s001.png`` ... in ``out_dir`` (written as a whole or not at all).

    Returns ``(names written, images skipped because they are smaller than crop_size)``; unlike Real-ESRGAN's
    script, the skipped ones are named."""
    files = list_images(hr_dir)
    small = [f for f in files if min(image_size(f)) < crop_size]
    names = _write_folder(out_dir, [(f, crop_size, step) for f in files], _subimages, n_workers, 'sub-images')
    return names, small
