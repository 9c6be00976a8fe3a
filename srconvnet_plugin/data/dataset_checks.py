"""Checks of the ``datasets`` of a parsed option file, before anything is built: each function returns the problems
it finds, one line each naming the dataset, the key and the value at fault (the option collector,
:func:`srconvnet_plugin.utils.checks.check_options`, reports them with every other problem):

* ``PairedImageDataset``: ``gt_size`` missing or not divisible by ``scale`` (training sets), images smaller than
  ``gt_size``; ``dataroot_gt`` / ``dataroot_lq`` missing, not existing, not a folder; ``io_backend: lmdb`` on a path
  that is not an LMDB (no ``.lmdb`` suffix, no ``data.mdb``, unreadable), an LMDB without ``meta_info.txt``, or whose
  ``meta_info.txt`` names keys the LMDB does not hold; GT and LQ key sets that differ (the first few of each side are
  named); LQ sizes that are not GT / ``scale`` (training: exactly; validation/test: ``floor(GT / scale)``, as basicsr
  crops the rest), and GT/LQ pairs with different channel counts;
* ``RealESRGANDataset``: its kernel keys, ``dataroot_gt`` and the images its ``meta_info`` lists (or its LMDB).

Sizes come from ``meta_info.txt`` for LMDBs and from image headers (Pillow, no decoding) for folders.
"""
import os.path as osp
import re

#: how many names to show when listing keys
_SHOW = 5
_META_LINE = re.compile(r'^(?P<name>\S+)\s+\((?P<h>\d+),\s*(?P<w>\d+)(?:,\s*(?P<c>\d+))?\)')


def _names(items):
    items = sorted(items)
    more = f' ... ({len(items)} in all)' if len(items) > _SHOW else ''
    return ', '.join(items[:_SHOW]) + more


def lmdb_problem(path):
    """Why ``path`` is not a readable basicsr LMDB (None if it is)."""
    if not str(path).endswith('.lmdb'):
        return 'is not an LMDB: basicsr needs LMDB folders named *.lmdb (or set io_backend: type: disk)'
    if not osp.isdir(path):
        return 'does not exist' if not osp.exists(path) else 'is not an LMDB folder (it is a file)'
    if not osp.isfile(osp.join(path, 'data.mdb')):
        return 'is not an LMDB: it has no data.mdb'
    if not osp.isfile(osp.join(path, 'meta_info.txt')):
        return ('has no meta_info.txt (one "<name>.png (h,w,c) <compression>" line per image, written by '
                'basicsr.utils.lmdb_util.make_lmdb_from_imgs); basicsr reads the keys from it')
    return None


def read_lmdb_meta(path):
    """``{key: (h, w, c)}`` from ``<path>/meta_info.txt``, keyed the way basicsr keys it (name up to the first
    dot); also checks that the LMDB holds every key. Returns ``(meta, problem)``."""
    import lmdb
    meta = {}
    try:
        with open(osp.join(path, 'meta_info.txt'), encoding='utf-8') as f:
            lines = f.readlines()
    except (OSError, UnicodeDecodeError) as e:
        return meta, f'meta_info.txt cannot be read ({e})'
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = _META_LINE.match(line)
        if m is None:
            return meta, f'meta_info.txt line {n}: {line.strip()!r} is not "<name> (h,w,c) <compression>"'
        meta[m['name'].split('.')[0]] = (int(m['h']), int(m['w']), int(m['c'] or 1))
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=True)
    except lmdb.Error as e:
        return meta, f'is not a readable LMDB ({e})'
    try:
        with env.begin(write=False) as txn:
            stored = {k.decode('ascii', 'replace') for k in txn.cursor().iternext(keys=True, values=False)}
    finally:
        env.close()
    missing = set(meta) - stored
    if missing:
        return meta, f'meta_info.txt lists keys the LMDB does not hold: {_names(missing)}'
    return meta, None


def read_folder_sizes(folder, filename_tmpl='{}', is_lq=False):
    """``{key: (h, w, c)}`` for the images directly in ``folder`` (basicsr's ``scandir``, not recursive), read from
    the headers with Pillow; the key is the GT base name (the LQ name with ``filename_tmpl`` undone).
    Returns ``(sizes, problem)``."""
    from PIL import Image, UnidentifiedImageError

    from basicsr.utils import scandir
    sizes = {}
    prefix, _, suffix = filename_tmpl.partition('{}')
    for name in sorted(scandir(folder, recursive=False)):
        base, _ = osp.splitext(name)
        if is_lq and prefix + suffix:
            if not (base.startswith(prefix) and base.endswith(suffix)):
                continue
            base = base[len(prefix):len(base) - len(suffix)]
        try:
            with Image.open(osp.join(folder, name)) as im:
                (w, h), grey = im.size, im.mode.startswith(('1', 'L', 'I', 'F'))  # L, LA, I;16, ...
        except Image.DecompressionBombError:  # a very large image: Pillow refuses to open it, OpenCV does not
            import cv2
            img = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
            (h, w), grey = img.shape[:2], img.ndim == 2 or img.shape[2] == 2
        except (UnidentifiedImageError, OSError) as e:
            return sizes, f'{name} is not a readable image ({e})'
        sizes[base] = (h, w, 1 if grey else 3)  # basicsr reads with IMREAD_COLOR: 2/4 channels become 3
    return sizes, None


def _check_pairs(problems, where, phase, dataset_opt, gt_sizes, lq_sizes, scale):
    """Key sets, sizes and channels of the GT/LQ pairs of one paired dataset (``where``: its option path)."""
    gt_keys, lq_keys = set(gt_sizes), set(lq_sizes)
    if gt_keys != lq_keys:
        problems.append(f'{where}dataroot_gt: {dataset_opt["dataroot_gt"]} and dataroot_lq: '
                        f'{dataset_opt["dataroot_lq"]} hold different images: only in GT: '
                        f'{_names(gt_keys - lq_keys) or "-"}; only in LQ: {_names(lq_keys - gt_keys) or "-"}')
    gt_size = dataset_opt.get('gt_size') if phase == 'train' else None
    wrong, small, channels = [], [], []
    for key in sorted(gt_keys & lq_keys):
        (hg, wg, cg), (hl, wl, cl) = gt_sizes[key], lq_sizes[key]
        if phase == 'train':
            ok = (hg, wg) == (hl * scale, wl * scale)
        else:
            ok = (hg // scale, wg // scale) == (hl, wl)
        if not ok:
            wrong.append(f'{key} (GT {hg}x{wg}, LQ {hl}x{wl})')
        if isinstance(gt_size, int) and min(hg, wg) < gt_size:
            small.append(f'{key} ({hg}x{wg})')
        if (cg == 1) != (cl == 1):
            channels.append(f'{key} (GT {cg}, LQ {cl} channels)')
    if wrong:
        problems.append(f'{where}dataroot_lq: {dataset_opt["dataroot_lq"]}: LQ sizes are not GT / scale '
                        f'(scale: {scale}): {_names(wrong)}')
    if small:
        problems.append(f'{where}gt_size: {gt_size}: GT images smaller than the crop in '
                        f'{dataset_opt["dataroot_gt"]}: {_names(small)}')
    if channels:
        problems.append(f'{where}dataroot_gt/dataroot_lq: grey and colour images paired: {_names(channels)}')


def check_paired_dataset(opt, name, dataset_opt):
    """Problems with the paths, LMDB structure, key sets and sizes of one ``PairedImageDataset``."""
    phase, scale = dataset_opt.get('phase', name.split('_')[0]), opt.get('scale')
    where = f'datasets: {name}: '
    problems = []
    if phase == 'train':
        gt_size = dataset_opt.get('gt_size')
        if not isinstance(gt_size, int) or gt_size <= 0:
            problems.append(f'{where}gt_size: {gt_size!r}: training needs a positive integer crop size')
        elif isinstance(scale, int) and gt_size % scale:
            problems.append(f'{where}gt_size: {gt_size} is not divisible by scale: {scale} (the LQ crop would be '
                            f'{gt_size / scale:g} pixels); use e.g. {gt_size - gt_size % scale}')
    backend = (dataset_opt.get('io_backend') or {}).get('type')
    sizes, ok = {}, True
    for key in ('dataroot_gt', 'dataroot_lq'):
        path = dataset_opt.get(key)
        if path is None:
            problems.append(f'{where}{key}: missing (PairedImageDataset needs dataroot_gt and dataroot_lq)')
            ok = False
            continue
        path = osp.expanduser(str(path))
        if backend == 'lmdb':
            problem = lmdb_problem(path)
            if problem is None:
                sizes[key], problem = read_lmdb_meta(path)
        elif not osp.exists(path):
            problem = 'does not exist'
        elif not osp.isdir(path):
            problem = 'is not a folder of images'
        elif 'meta_info_file' in dataset_opt:
            problem, sizes[key] = None, None  # basicsr takes the names from meta_info_file; keys are not compared
        else:
            sizes[key], problem = read_folder_sizes(path, dataset_opt.get('filename_tmpl', '{}'),
                                                    is_lq=key == 'dataroot_lq')
            if problem is None and not sizes[key]:
                problem = 'holds no images'
        if problem is not None:
            problems.append(f'{where}{key}: {path} {problem}')
            ok = False
    if backend == 'lmdb' and 'meta_info_file' in dataset_opt and not osp.isfile(dataset_opt['meta_info_file']):
        problems.append(f'{where}meta_info_file: {dataset_opt["meta_info_file"]} does not exist')
    if ok and sizes.get('dataroot_gt') is not None and isinstance(scale, int):
        _check_pairs(problems, where, phase, dataset_opt, sizes['dataroot_gt'], sizes['dataroot_lq'], scale)
    return problems


def check_realesrgan_dataset(name, dataset_opt):
    """Problems with the keys and files of one ``RealESRGANDataset``: the kernel settings, ``dataroot_gt`` and the
    images its ``meta_info`` lists (``io_backend: disk``) or its LMDB."""
    from ..models.realworld_model import DATASET_KEYS
    where = f'datasets: {name}: '
    problems = []
    missing = [key for key in DATASET_KEYS if key not in dataset_opt]
    if missing:
        problems.append(f'{where}{", ".join(missing)}: missing; RealESRGANDataset draws the blur kernels of '
                        'Real-ESRGAN\'s degradations from these keys (their values: options/train/RealSRConvNet/)')
    root = dataset_opt.get('dataroot_gt')
    if root is None:
        problems.append(f'{where}dataroot_gt: missing (the folder or LMDB of HR images)')
        return problems
    root = osp.expanduser(str(root))
    if (dataset_opt.get('io_backend') or {}).get('type') == 'lmdb':
        problem = lmdb_problem(root)
        if problem is not None:
            problems.append(f'{where}dataroot_gt: {root} {problem}')
        return problems
    if not osp.isdir(root):
        problems.append(f'{where}dataroot_gt: {root} {"does not exist" if not osp.exists(root) else "is not a folder"}')
        return problems
    meta = dataset_opt.get('meta_info')
    if meta is None:
        problems.append(f'{where}meta_info: missing; RealESRGANDataset reads the GT images listed in it, one path '
                        f'relative to dataroot_gt per line (make it with scripts/data_preparation/prepare_realworld.py '
                        'meta-info)')
        return problems
    try:
        with open(meta, encoding='utf-8') as f:
            names = [line.strip().split(' ')[0] for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f'{where}meta_info: {meta} cannot be read ({getattr(e, "strerror", None) or e})')
        return problems
    absent = [n for n in names if not osp.isfile(osp.join(root, n))]
    if not names:
        problems.append(f'{where}meta_info: {meta} lists no images')
    elif absent:
        problems.append(f'{where}meta_info: {meta} lists images that are not in dataroot_gt: {root}: {_names(absent)}')
    return problems


def check_dataset(opt, name, dataset_opt):
    """The problems of the dataset ``name`` of ``opt`` that its type's check finds (``[]`` for other types)."""
    from ..models.realworld_model import REALESRGAN_DATASETS
    if dataset_opt.get('type') == 'PairedImageDataset':
        return check_paired_dataset(opt, name, dataset_opt)
    if dataset_opt.get('type') in REALESRGAN_DATASETS:
        return check_realesrgan_dataset(name, dataset_opt)
    return []
