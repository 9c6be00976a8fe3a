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
import os
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
    if name not in registry and f'{name}_basicsr' not in registry:  # (basicsr's get falls back to <name>_basicsr)
        problems.append(f'{where}{key}: {name!r} is not a registered {kind}; registered: '
                        f'{", ".join(sorted(registry.keys()))}')
        return None
    return registry.get(name if name in registry else f'{name}_basicsr')


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
                        f'{", ".join(SR_MODEL_TYPES)}; remove them or train with one of those')
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


# --------------------------------------------------------------------------------------------------------------------
# real-world training (models/realworld_model.py): Real-ESRGAN's degradations and dataset, VGG weights, stage 1
# --------------------------------------------------------------------------------------------------------------------
def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_realesrgan_dataset(name, dataset_opt, where, problems):
    """Keys and files of one ``RealESRGANDataset``: the kernel settings, ``dataroot_gt`` and the images its
    ``meta_info`` lists (``io_backend: disk``) or its LMDB."""
    from ..models.realworld_model import DATASET_KEYS
    where = f'{where}datasets: {name}: '
    missing = [key for key in DATASET_KEYS if key not in dataset_opt]
    if missing:
        problems.append(f'{where}{", ".join(missing)}: missing; RealESRGANDataset draws the blur kernels of '
                        'Real-ESRGAN\'s degradations from these keys (their values: options/train/RealSRConvNet/)')
    root = dataset_opt.get('dataroot_gt')
    if root is None:
        problems.append(f'{where}dataroot_gt: missing (the folder or LMDB of HR images)')
        return
    root = osp.expanduser(str(root))
    if (dataset_opt.get('io_backend') or {}).get('type') == 'lmdb':
        problem = lmdb_problem(root)
        if problem is not None:
            problems.append(f'{where}dataroot_gt: {root} {problem}')
        return
    if not osp.isdir(root):
        problems.append(f'{where}dataroot_gt: {root} {"does not exist" if not osp.exists(root) else "is not a folder"}')
        return
    meta = dataset_opt.get('meta_info')
    if meta is None:
        problems.append(f'{where}meta_info: missing; RealESRGANDataset reads the GT images listed in it, one path '
                        f'relative to dataroot_gt per line (make it with scripts/data_preparation/prepare_realworld.py '
                        'meta-info)')
        return
    try:
        with open(meta, encoding='utf-8') as f:
            names = [line.strip().split(' ')[0] for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f'{where}meta_info: {meta} cannot be read ({getattr(e, "strerror", None) or e})')
        return
    absent = [n for n in names if not osp.isfile(osp.join(root, n))]
    if not names:
        problems.append(f'{where}meta_info: {meta} lists no images')
    elif absent:
        problems.append(f'{where}meta_info: {meta} lists images that are not in dataroot_gt: {root}: {_names(absent)}')


def _vgg_download_problem(url, timeout=5):
    """Why ``url`` cannot be fetched from here (None if it can), asked the way torch.hub downloads (urllib, so proxy
    variables count)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method='HEAD'), timeout=timeout):
            return None
    except (urllib.error.URLError, OSError, ValueError) as e:
        return str(getattr(e, 'reason', None) or e)


def check_perceptual_weights(opt, where, problems):
    """``train: perceptual_opt``: BasicSR's VGG feature extractor reads ``experiments/pretrained_models/
    vgg19-dcbb9e9d.pth`` (relative to the working directory) when it is there, else torchvision downloads its VGG
    weights while the model is built; refuse, naming the path and the download, when neither can work."""
    perceptual = (opt.get('train') or {}).get('perceptual_opt')
    if not opt.get('is_train') or not perceptual:
        return
    import torch
    import torchvision

    from basicsr.archs.vgg_arch import VGG_PRETRAIN_PATH
    vgg_type = perceptual.get('vgg_type', 'vgg19')
    if osp.isfile(VGG_PRETRAIN_PATH):
        return
    try:
        url = torchvision.models.get_model_weights(vgg_type).IMAGENET1K_V1.url
    except (ValueError, AttributeError):
        problems.append(f'{where}train: perceptual_opt: vgg_type: {vgg_type!r} is not a torchvision VGG (vgg19, ...)')
        return
    cached = osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(url))
    if osp.isfile(cached):
        return
    reason = _vgg_download_problem(url)
    if reason is not None:
        problems.append(f'{where}train: perceptual_opt: vgg_type: {vgg_type}: the VGG weights of the perceptual loss '
                        f'are not at {osp.abspath(VGG_PRETRAIN_PATH)} and cannot be downloaded here ({reason}); '
                        f'download {url} elsewhere and copy it to that path')


def check_realworld(opt, where, problems):
    """Real-ESRGAN's two stages (``RealSRConvNetModel``, ``RealSRConvNetGANModel`` and BasicSR's names for them):
    the degradation keys, ``gt_size``, ``queue_size``, the dataset, ``network_d`` and stage 1's weights."""
    from ..models.precision_model import MODEL_SUBSTITUTES
    from ..models.realworld_model import DATASET_CROP, DEGRADATION_KEYS, STAGE_KEYS
    model_type = opt.get('model_type')
    model = MODEL_SUBSTITUTES.get(model_type, model_type)
    if model not in STAGE_KEYS or not opt.get('is_train'):
        return
    if model == 'RealSRConvNetGANModel':
        if not opt.get('network_d'):
            problems.append(f'{where}network_d: missing; model_type: {model_type} trains a discriminator (Real-ESRGAN: '
                            'type: UNetDiscriminatorSN_basicsr, num_in_ch: 3, num_feat: 64, skip_connection: true)')
        pretrained = (opt.get('path') or {}).get('pretrain_network_g')
        states = (opt.get('path') or {}).get('training_states')
        resuming = opt.get('path', {}).get('resume_state') or (
            opt.get('auto_resume') and states and osp.isdir(states) and any(n.endswith('.state')
                                                                            for n in os.listdir(states)))
        if pretrained is not None and not resuming and not osp.exists(pretrained):
            problems.append(f'{where}path: pretrain_network_g: {pretrained} does not exist; stage 2 fine-tunes the '
                            'weights of stage 1 (model_type: RealSRConvNetModel): train stage 1 first, or point '
                            'pretrain_network_g at its net_g_latest.pth')
    if not opt.get('high_order_degradation', True):
        return
    missing = [key for key in (*DEGRADATION_KEYS, *STAGE_KEYS[model]) if key not in opt]
    if missing:
        problems.append(f'{where}{", ".join(missing)}: missing; model_type: {model_type} makes the LQ images on the '
                        'fly with Real-ESRGAN\'s degradations and reads these top-level keys (their values: '
                        'options/train/RealSRConvNet/)')
    gt_size, scale = opt.get('gt_size'), opt.get('scale')
    if 'gt_size' in opt:
        if not _positive_int(gt_size):
            problems.append(f'{where}gt_size: {gt_size!r}: the GT crop must be a positive integer')
        elif gt_size > DATASET_CROP:
            problems.append(f'{where}gt_size: {gt_size} is larger than the {DATASET_CROP}x{DATASET_CROP} GT that '
                            f'RealESRGANDataset hands the model (it pads or crops every image to {DATASET_CROP})')
        elif _positive_int(scale) and gt_size % scale:
            problems.append(f'{where}gt_size: {gt_size} is not divisible by scale: {scale}; use e.g. '
                            f'{gt_size - gt_size % scale}')
    train_set = (opt.get('datasets') or {}).get('train') or {}
    queue, batch = opt.get('queue_size', 180), train_set.get('batch_size_per_gpu')
    if not _positive_int(queue):
        problems.append(f'{where}queue_size: {queue!r}: the pool of training pairs needs a positive integer size')
    elif _positive_int(batch) and queue % batch:
        problems.append(f'{where}queue_size: {queue} is not a multiple of datasets: train: batch_size_per_gpu: '
                        f'{batch} (the pool of training pairs is filled and drawn a batch at a time); use e.g. '
                        f'{max(batch, queue - queue % batch)}')
    if train_set and train_set.get('type') not in ('RealESRGANDataset', 'RealESRGANDataset_basicsr'):
        problems.append(f'{where}datasets: train: type: {train_set.get("type")}: model_type: {model_type} degrades '
                        'the GT with the kernels RealESRGANDataset draws; use type: RealESRGANDataset_basicsr (or '
                        'high_order_degradation: false to train on ready-made pairs)')


def check_options(opt, opt_path=None):
    """Check a parsed option dict (see the module docstring); raise :class:`OptionCheckError` listing every problem.

    ``opt_path`` is only used to name the file in the messages.
    """
    from basicsr.data import DATASET_REGISTRY
    where = f'{opt_path}: ' if opt_path else ''
    problems = []
    check_network_and_model(opt, where, problems)
    check_training_keys(opt, where, problems)
    check_realworld(opt, where, problems)
    check_perceptual_weights(opt, where, problems)
    for name, dataset_opt in (opt.get('datasets') or {}).items():
        dataset_opt = dataset_opt or {}
        dtype = _registry_check(problems, f'{where}datasets: {name}: ', 'type', dataset_opt.get('type'),
                                DATASET_REGISTRY, 'dataset')
        if dtype is not None and dataset_opt['type'] == 'PairedImageDataset':
            check_paired_dataset(opt, name, dataset_opt, where, problems)
        elif dtype is not None and dataset_opt['type'] in ('RealESRGANDataset', 'RealESRGANDataset_basicsr'):
            check_realesrgan_dataset(name, dataset_opt, where, problems)
    if problems:
        head = f'{opt_path}: ' if opt_path else ''
        raise OptionCheckError(f'{head}{len(problems)} problem(s) in the options:\n  ' + '\n  '.join(
            p[len(where):] if where and p.startswith(where) else p for p in problems))

