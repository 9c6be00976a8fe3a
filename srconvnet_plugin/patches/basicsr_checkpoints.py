"""BasicSR's side of checkpoint files: ``BaseModel.load_network`` / ``save_network`` / ``save_training_state``
made weights-only, safetensors-aware and atomic, and where a training run keeps its network files.

The reading, writing and checking of the files themselves is the core's :mod:`srconvnet.checkpoints`; this module
wires it into basicsr's model (``compat.apply_pipeline_shims``) and into ``--auto_resume`` (``resume.py``).
"""
import functools
import importlib
import os
import os.path as osp
import re
import threading
import types

from srconvnet.atomic_write import atomic_save
from srconvnet.checkpoints import (SAFETENSORS_SUFFIX, CheckpointError, check_fits, is_safetensors, load_weights_only,
                                   save_state_dict, state_dict_of, strip_prefixes)

from ..utils.faults import CheckpointSaveError

#: what ``logger: save_checkpoint_format`` may be
CHECKPOINT_FORMATS = ('pth', 'safetensors')


def params_file(path):
    """Where a ``.safetensors`` network file of a run with EMA keeps the non-EMA ``params``:
    ``net_g_1000.safetensors`` -> ``net_g_1000.params.safetensors``."""
    return os.fspath(path)[:-len(SAFETENSORS_SUFFIX)] + '.params' + SAFETENSORS_SUFFIX


def network_file(models, label, it):
    """``net_<label>_<it>.pth`` or ``.safetensors`` in ``models``: the one that exists (the newer if both do; the
    ``.pth`` name if neither does)."""
    pth = osp.join(models, f'net_{label}_{it}.pth')
    st = pth[:-len('.pth')] + SAFETENSORS_SUFFIX
    if osp.exists(st) and (not osp.exists(pth) or osp.getmtime(st) >= osp.getmtime(pth)):
        return st
    return pth


def use_existing_network_files(opt):
    """After basicsr's ``check_resume``, which sets ``path: pretrain_network_*`` to ``net_*_<iter>.pth``: use the
    ``.safetensors`` file instead where that is what the run saved."""
    for key, value in list(opt['path'].items()):
        if key.startswith('pretrain_network_') and isinstance(value, str) and value.endswith('.pth'):
            folder, name = osp.split(value)
            match = re.fullmatch(r'net_(.+)_(\w+)\.pth', name)
            if match and folder == opt['path'].get('models'):
                opt['path'][key] = network_file(folder, match.group(1), match.group(2))


def check_options(opt):
    """Problems with the checkpoint keys (``logger: save_checkpoint_format`` must be ``pth`` or ``safetensors``), for
    the option collector (:func:`srconvnet_plugin.utils.checks.check_options`); ``[]`` if there are none."""
    fmt = (opt.get('logger') or {}).get('save_checkpoint_format', 'pth')
    if fmt not in CHECKPOINT_FORMATS:
        return [f'logger: save_checkpoint_format: {fmt!r} is not one of {", ".join(CHECKPOINT_FORMATS)}']
    return []


# --------------------------------------------------------------------------------------------------------------------
# basicsr's BaseModel: weights-only and safetensors loads, atomic saves that fail loudly, clear refusals
# --------------------------------------------------------------------------------------------------------------------
#: the error of the latest failed checkpoint write in this thread (None after a successful one)
_SAVE = threading.local()


class SafeTorch(types.ModuleType):
    """``torch`` as basicsr/models/base_model.py sees it: the same module, except that ``load`` is weights-only and
    reads ``.safetensors`` too, and ``save`` is atomic (temp file, fsync, rename) and remembers its last error for
    :func:`wrap_save`."""

    def __init__(self):
        super().__init__('torch')

    def __getattr__(self, name):
        return getattr(importlib.import_module('torch'), name)

    @staticmethod
    def load(f, map_location=None, **kwargs):
        """``.safetensors`` files come back as ``{'params': ..., 'params_ema': ...}`` for ``load_network``: both the
        file's flat state dict, except that ``params`` comes from the :func:`params_file` beside it when a run with
        EMA saved one (the EMA weights are the file itself)."""
        kwargs.pop('weights_only', None)
        if not is_safetensors(f):
            return load_weights_only(f, map_location=map_location)
        flat = load_weights_only(f, map_location=map_location)
        params = params_file(f)
        return {'params': load_weights_only(params, map_location) if osp.exists(params) else flat,
                'params_ema': flat}

    @staticmethod
    def save(obj, f, **kwargs):
        _record_save(atomic_save, obj, f)


def _record_save(write, *args):
    """Run ``write(*args)``; remember its error for :func:`wrap_save` (basicsr's retry loop expects a raise)."""
    try:
        write(*args)
    except Exception as e:
        _SAVE.error = e
        raise
    _SAVE.error = None


def wrap_save(_orig, what):

    @functools.wraps(_orig)
    def save(self, *args, **kwargs):
        """Wraps ``BaseModel.save_network`` / ``save_training_state``: basicsr retries a failed ``torch.save`` three
        times, then logs "Just ignore it" and trains on without a checkpoint; here the failure stops training."""
        _SAVE.error = None
        _orig(self, *args, **kwargs)
        error = getattr(_SAVE, 'error', None)
        if error is not None:
            _SAVE.error = None
            raise CheckpointSaveError(f'could not save the {what} ({error.__class__.__name__}: {error}); training '
                                      'stopped. Files written before are complete and unchanged (saves go to a '
                                      'temporary file that is renamed only when complete). Free space, then resume '
                                      'with --auto_resume.') from error

    return save


def wrap_save_network(_orig):

    @functools.wraps(_orig)
    def save_network(self, net, net_label, current_iter, param_key='params'):
        """Wraps ``BaseModel.save_network``: with ``logger: save_checkpoint_format: safetensors`` the network goes to
        ``<label>_<iter>.safetensors`` as one flat state dict (``params_ema`` when the run has EMA, else
        ``params``), which spandrel and friends load; with EMA the ``params`` go to the :func:`params_file` beside
        it, so that ``--auto_resume`` restores both."""
        if (self.opt.get('logger') or {}).get('save_checkpoint_format', 'pth') != 'safetensors':
            return _orig(self, net, net_label, current_iter, param_key)
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        dicts = {key: strip_prefixes(self.get_bare_model(n).state_dict()) for n, key in zip(nets, keys)}
        path = osp.join(self.opt['path']['models'],
                        f'{net_label}_{"latest" if current_iter == -1 else current_iter}{SAFETENSORS_SUFFIX}')
        try:
            if 'params_ema' in dicts and 'params' in dicts:
                _record_save(save_state_dict, dicts['params'], params_file(path), True)
            _record_save(save_state_dict, dicts.get('params_ema', dicts[keys[0]]), path, True)
        except Exception:  # recorded; wrap_save turns it into CheckpointSaveError
            pass

    return save_network


def _pretrain_option(opt, load_path):
    """``('path: pretrain_network_g: <file>', 'network_g')``: the option that names ``load_path`` and the network
    it is for (the file and ``'the network is'`` when no option names it)."""
    for key, value in (opt.get('path') or {}).items():
        if key.startswith('pretrain_') and value is not None and os.fspath(value) == os.fspath(load_path):
            return f'path: {key}: {load_path}', f'{key[len("pretrain_"):]} asks for'
    return os.fspath(load_path), 'the network is'


def load_network(self, net, load_path, strict=True, param_key='params'):
    """Replaces ``BaseModel.load_network`` (same arguments, same log lines): reads ``.pth`` weights-only or
    ``.safetensors`` (through :class:`SafeTorch`), takes ``param_key`` (``params`` when it is absent, as basicsr
    does), strips ``module.`` (and for SRConvNet the authors' unused MeanShift entries), and refuses a checkpoint that
    is missing, truncated, holds code or does not fit the network with one message naming the option and the file,
    where basicsr prints two walls of key names and a traceback."""
    from basicsr.utils import get_root_logger
    logger = get_root_logger()
    bare = self.get_bare_model(net)
    source, wanted_by = _pretrain_option(self.opt, load_path)
    try:
        checkpoint = SafeTorch.load(load_path)
    except CheckpointError as err:
        raise type(err)(f'{source}: {str(err).removeprefix(f"{load_path}: ")}') from err
    if param_key and isinstance(checkpoint, dict) and param_key not in checkpoint and 'params' in checkpoint:
        param_key = 'params'
        logger.info('Loading: params_ema does not exist, use params.')
    # basicsr's layouts; else the authors' model_state_dict or a bare state dict
    checkpoint = state_dict_of(checkpoint, source, param_key)
    logger.info(f'Loading {bare.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
    state_dict = check_fits(checkpoint, bare, source, strict=strict, wanted_by=wanted_by)
    if not strict:  # basicsr's warnings, and keys of other shapes renamed '.ignore' so that they are skipped
        self._print_different_keys_loading(bare, state_dict, strict)
    bare.load_state_dict(state_dict, strict=strict)
