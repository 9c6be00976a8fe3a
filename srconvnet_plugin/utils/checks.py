"""The one collector of option problems: ``check_options(opt, opt_path)`` runs inside the entry points'
``parse_options`` (``patches.compat``), after basicsr has parsed the file and the ``--force_yml`` overrides, and
before anything is built. It asks every owner of option keys for its problems and raises one
:class:`OptionCheckError` listing them all, each line naming the key and the value at fault:

* here: ``network_*: type`` (and ``model_type``, ``datasets: *: type``) not registered (the registered names are
  listed), ``network_g: upscale`` (or the arch's default) different from ``scale``, ``num_gpu`` asking for CUDA on a
  machine without it;
* :func:`srconvnet_plugin.models.precision_model.check_options`: the training keys (``use_amp``, ``amp_bf16``,
  ``use_channels_last``, ``use_compile``, ``compile_mode``, ``train: grad_clip`` / ``grad_clip_max_norm``,
  ``datasets: train: accum_iter``);
* :func:`srconvnet_plugin.models.realworld_model.check_options`: Real-ESRGAN's two stages (degradation keys,
  ``gt_size``, ``queue_size``, ``network_d``, stage 1's weights, the perceptual loss's VGG weights);
* :func:`srconvnet_plugin.patches.basicsr_checkpoints.check_options`: ``logger: save_checkpoint_format``;
* :func:`srconvnet_plugin.data.dataset_checks.check_dataset`: every dataset's paths, LMDBs, key sets and sizes.
"""
import inspect

from .options import OptionFileError


class OptionCheckError(OptionFileError):
    """One or more option values cannot work; each line names the file, key and value at fault."""


def _registry_check(problems, key, name, registry, kind):
    if name is None:
        problems.append(f'{key}: missing ({kind} type)')
        return None
    if name not in registry and f'{name}_basicsr' not in registry:  # (basicsr's get falls back to <name>_basicsr)
        problems.append(f'{key}: {name!r} is not a registered {kind}; registered: '
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


def network_and_model_problems(opt):
    """Registered types for ``model_type``, every ``network_*`` and every dataset; ``network_g: upscale`` ==
    ``scale``. Returns ``(problems, datasets)``: the datasets whose type is registered, ``{name: dataset_opt}``."""
    from basicsr.archs import ARCH_REGISTRY
    from basicsr.data import DATASET_REGISTRY
    from basicsr.models import MODEL_REGISTRY
    problems = []
    _registry_check(problems, 'model_type', opt.get('model_type'), MODEL_REGISTRY, 'model')
    scale = opt.get('scale')
    for key in [k for k in opt if k.startswith('network_')]:
        net_opt = opt[key] or {}
        cls = _registry_check(problems, f'{key}: type', net_opt.get('type'), ARCH_REGISTRY, 'arch')
        if cls is None or key != 'network_g' or scale is None:
            continue
        upscale = _arch_upscale(cls, net_opt)
        if upscale is not None and upscale != scale:
            origin = '' if 'upscale' in net_opt else f' (the default of {net_opt["type"]})'
            problems.append(f'{key}: upscale: {upscale}{origin} differs from scale: {scale}; the network '
                            f'would make x{upscale} outputs for x{scale} ground truth')
    datasets = {}
    for name, dataset_opt in (opt.get('datasets') or {}).items():
        dataset_opt = dataset_opt or {}
        if _registry_check(problems, f'datasets: {name}: type', dataset_opt.get('type'), DATASET_REGISTRY,
                           'dataset') is not None:
            datasets[name] = dataset_opt
    return problems, datasets


def device_problems(opt):
    """``num_gpu`` asking for CUDA where torch sees none."""
    import torch
    if opt.get('num_gpu', 0) != 0 and not torch.cuda.is_available():
        return [f"num_gpu: {opt['num_gpu']} asks for CUDA, but torch sees no CUDA device here; use num_gpu: 0 (or "
                "auto) to run on the CPU"]
    return []


def option_problems(opt):
    """Every problem of a parsed option dict that the owners of its keys find (see the module docstring), in order:
    networks and model, device, training keys, real-world stages, checkpoint format, datasets."""
    from ..data.dataset_checks import check_dataset
    from ..models import precision_model, realworld_model
    from ..patches import basicsr_checkpoints
    problems, datasets = network_and_model_problems(opt)
    problems += device_problems(opt)
    problems += precision_model.check_options(opt)
    problems += realworld_model.check_options(opt)
    problems += basicsr_checkpoints.check_options(opt)
    for name, dataset_opt in datasets.items():
        problems += check_dataset(opt, name, dataset_opt)
    return problems


def check_options(opt, opt_path=None):
    """Check a parsed option dict (see the module docstring); raise :class:`OptionCheckError` listing every problem.

    ``opt_path`` is only used to name the file in the message.
    """
    problems = option_problems(opt)
    if problems:
        head = f'{opt_path}: ' if opt_path else ''
        raise OptionCheckError(f'{head}{len(problems)} problem(s) in the options:\n  ' + '\n  '.join(problems))
