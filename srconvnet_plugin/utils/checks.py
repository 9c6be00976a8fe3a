"""Check a parsed BasicSR option dict before anything is built, so a wrong option fails in the first second.

``check_options(opt, opt_path)`` runs inside the entry points' ``parse_options`` (``compat``), after basicsr has
parsed the file and the ``--force_yml`` overrides. It collects every problem it finds and raises one
:class:`OptionCheckError` whose lines each name the file, the key and the value at fault:

* ``network_*: type`` (and ``model_type``, ``datasets: *: type``) not registered: the registered names are listed;
* ``network_g: upscale`` (or the arch's default) different from ``scale``;
* ``gt_size`` missing or not divisible by ``scale`` (training sets), images smaller than ``gt_size``;
* ``dataroot_gt`` / ``dataroot_lq`` missing, not existing, not a folder;
* ``io_backend: lmdb`` on a path that is not an LMDB (no ``.lmdb`` suffix, no ``data.mdb``, unreadable), an LMDB
  without ``meta_info.txt``, or whose ``meta_info.txt`` names keys the LMDB does not hold;
* GT and LQ key sets that differ (the first few of each side are named);
* LQ sizes that are not GT / ``scale`` (training: exactly; validation/test: ``floor(GT / scale)``, as basicsr crops
  the rest), and GT/LQ pairs with different channel counts;
* the training keys (``models/precision_model.py``): ``use_amp``, ``amp_bf16``, ``use_channels_last``,
  ``use_compile`` and ``train: grad_clip`` not true/false, ``compile_mode`` not one of torch.compile's modes,
  ``train: grad_clip_max_norm`` not a positive number, ``datasets: train: accum_iter`` not an integer >= 1, fp16
  (``use_amp`` without ``amp_bf16``) where training runs on the CPU, bf16 on a GPU without bf16, ``amp_bf16``
  without ``use_amp``, and any of them set for a ``model_type`` they do not apply to.

Sizes come from ``meta_info.txt`` for LMDBs and from image headers (Pillow, no decoding) for folders.
"""
import inspect
import os.path as osp
import re

from .options import OptionFileError

#: how many names to show when listing keys
_SHOW = 5
_META_LINE = re.compile(r'^(?P<name>\S+)\s+\((?P<h>\d+),\s*(?P<w>\d+)(?:,\s*(?P<c>\d+))?\)')


class OptionCheckError(OptionFileError):
    """One or more option values cannot work; each line names the file, key and value at fault."""


def _names(items):
    items = sorted(items)
    more = f' ... ({len(items)} in all)' if len(items) > _SHOW else ''
    return ', '.join(items[:_SHOW]) + more


def _registry_check(problems, where, key, name, registry, kind):
    if name is None:
        problems.append(f'{where}{key}: missing ({kind} type)')
        return None
    if name not in registry:
        problems.append(f'{where}{key}: {name!r} is not a registered {kind}; registered: '
                        f'{", ".join(sorted(registry.keys()))}')
        return None
    return registry.get(name)


def _arch_upscale(cls, net_opt):
    """The ``upscale`` the arch will use: the option, or the constructor's default (None if it has neither)."""
    if 'upscale' in net_opt:
        return net_opt['upscale']
    try:
        param = inspect.signature(cls).parameters.get('upscale')
    except (TypeError, ValueError):
        return None
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def check_network_and_model(opt, where, problems):
    """Registered types for ``model_type`` and every ``network_*``; ``network_g: upscale`` == ``scale``."""
    from basicsr.archs import ARCH_REGISTRY
    from basicsr.models import MODEL_REGISTRY
    _registry_check(problems, where, 'model_type', opt.get('model_type'), MODEL_REGISTRY, 'model')
    scale = opt.get('scale')
    for key in [k for k in opt if k.startswith('network_')]:
        net_opt = opt[key] or {}
        cls = _registry_check(problems, where, f'{key}: type', net_opt.get('type'), ARCH_REGISTRY, 'arch')
        if cls is None or key != 'network_g' or scale is None:
            continue
        upscale = _arch_upscale(cls, net_opt)
        if upscale is not None and upscale != scale:
            origin = '' if 'upscale' in net_opt else f' (the default of {net_opt["type"]})'
            problems.append(f'{where}{key}: upscale: {upscale}{origin} differs from scale: {scale}; the network '
                            f'would make x{upscale} outputs for x{scale} ground truth')


# --------------------------------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------------------------------
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


def check_paired_dataset(opt, name, dataset_opt, where, problems):
    """Paths, LMDB structure, key sets and sizes of one ``PairedImageDataset``."""
    phase, scale = dataset_opt.get('phase', name.split('_')[0]), opt.get('scale')
    where = f'{where}datasets: {name}: '
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


# --------------------------------------------------------------------------------------------------------------------
# training keys (mixed precision, channels-last, compile, gradient clipping and accumulation)
# --------------------------------------------------------------------------------------------------------------------
def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_training_keys(opt, where, problems):
    """The keys :class:`~srconvnet_plugin.models.precision_model.PrecisionSRModel` reads (see its module)."""
    import torch

    from ..models.precision_model import SR_MODEL_TYPES, TOP_LEVEL_FLAGS, compile_modes
    train_opt = opt.get('train') or {}
    train_set = (opt.get('datasets') or {}).get('train') or {}
    given = {key: opt[key] for key in (*TOP_LEVEL_FLAGS, 'compile_mode') if opt.get(key) is not None}
    given.update({f'train: {key}': train_opt[key] for key in ('grad_clip', 'grad_clip_max_norm')
                  if train_opt.get(key) is not None})
    if train_set.get('accum_iter') is not None:
        given['datasets: train: accum_iter'] = train_set['accum_iter']
    for key, value in given.items():
        name = key.rsplit(': ', 1)[-1]
        if name in TOP_LEVEL_FLAGS or name == 'grad_clip':
            if not isinstance(value, bool):
                problems.append(f'{where}{key}: {value!r} is not true or false')
        elif name == 'compile_mode':
            if value not in compile_modes():
                problems.append(f'{where}{key}: {value!r} is not a torch.compile mode; use one of '
                                f'{", ".join(compile_modes())}')
        elif name == 'grad_clip_max_norm':
            if not _is_number(value) or not value > 0:
                problems.append(f'{where}{key}: {value!r}: the max gradient norm must be a number > 0')
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f'{where}{key}: {value!r}: accumulate over an integer number of batches >= 1')
    active = {key: value for key, value in given.items()
              if value is not False and not (key == 'compile_mode' and value == 'default')
              and not (key.endswith('accum_iter') and value == 1)}
    model_type = opt.get('model_type')
    if active and model_type not in SR_MODEL_TYPES:
        problems.append(f'{where}model_type: {model_type}: {", ".join(active)} take(s) effect only for model_type: '
                        'SRModel; remove them or train with SRModel')
        return
    if opt.get('amp_bf16') is True and opt.get('use_amp') is not True:
        problems.append(f'{where}amp_bf16: true does nothing without use_amp: true; add use_amp: true for bf16 '
                        'autocast (or remove amp_bf16 to train in fp32)')
    if opt.get('use_amp') is not True:
        return
    on_cuda = opt.get('num_gpu', 0) != 0 and torch.cuda.is_available()
    if opt.get('amp_bf16') is not True and not on_cuda:
        problems.append(f'{where}use_amp: true without amp_bf16: true is fp16 autocast with a GradScaler, which needs '
                        'a CUDA GPU; this run trains on the CPU: add amp_bf16: true for bf16 autocast')
    elif opt.get('amp_bf16') is True and on_cuda and not torch.cuda.is_bf16_supported():
        problems.append(f'{where}amp_bf16: true: {torch.cuda.get_device_name()} has no bfloat16; remove amp_bf16 for '
                        'fp16 autocast with a GradScaler')


def check_options(opt, opt_path=None):
    """Check a parsed option dict (see the module docstring); raise :class:`OptionCheckError` listing every problem.

    ``opt_path`` is only used to name the file in the messages.
    """
    from basicsr.data import DATASET_REGISTRY
    where = f'{opt_path}: ' if opt_path else ''
    problems = []
    check_network_and_model(opt, where, problems)
    check_training_keys(opt, where, problems)
    for name, dataset_opt in (opt.get('datasets') or {}).items():
        dataset_opt = dataset_opt or {}
        dtype = _registry_check(problems, f'{where}datasets: {name}: ', 'type', dataset_opt.get('type'),
                                DATASET_REGISTRY, 'dataset')
        if dtype is not None and dataset_opt['type'] == 'PairedImageDataset':
            check_paired_dataset(opt, name, dataset_opt, where, problems)
    if problems:
        head = f'{opt_path}: ' if opt_path else ''
        raise OptionCheckError(f'{head}{len(problems)} problem(s) in the options:\n  ' + '\n  '.join(
            p[len(where):] if where and p.startswith(where) else p for p in problems))

