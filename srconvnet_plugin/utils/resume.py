"""``--auto_resume`` and ``path: resume_state`` that lose nothing: the newest *complete* training state, loaded
weights-only, under root_path, on the CPU when there is no CUDA.

``compat.apply_pipeline_shims`` puts :func:`load_resume_state` in place of ``basicsr.train.load_resume_state``;
:func:`find_resume_state` can be used alone (it cleans up the temporary files of an interrupted save).
"""
import os
import os.path as osp
import warnings

from srconvnet.atomic_write import leftover_temp_files
from srconvnet.checkpoints import CheckpointReadError, load_weights_only

from ..patches.basicsr_checkpoints import network_file, use_existing_network_files


def _map_location(opt):
    import torch
    if torch.cuda.is_available() and opt['num_gpu'] != 0:
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _resume_network_files(opt, resume_iter):
    """The ``net_<label>_<iter>.pth`` (or ``.safetensors``) files a resume at ``resume_iter`` will load."""
    ignore = opt['path'].get('ignore_resume_networks') or []
    return [network_file(opt['path']['models'], key[len('network_'):], resume_iter)
            for key in opt if key.startswith('network_') and key not in ignore]


def _complete(path, map_location):
    """Load ``path`` weights-only; None (and a warning) when it is truncated, corrupt or missing."""
    try:
        return load_weights_only(path, map_location=map_location)
    except (CheckpointReadError, FileNotFoundError) as e:
        warnings.warn(f'--auto_resume: skipping {path}: {e}', stacklevel=3)
        return None


def find_resume_state(opt, map_location='cpu'):
    """Newest complete training state for ``--auto_resume``: ``(path, state)`` or ``(None, None)``.

    Looks at ``<iter>.state`` under ``opt['path']['training_states']`` from the newest down and takes the first that
    loads (weights-only) and whose network files (``net_g_<iter>.pth``) load too; the others are skipped with a
    warning. Temporary files left by a save that was killed (``.<name>.<random>.tmp``) are removed, with a warning.
    A state that holds code is refused (``pickle.UnpicklingError``), not skipped.
    """
    from basicsr.utils import scandir
    state_dir = opt['path']['training_states']
    for folder in (state_dir, opt['path'].get('models')):
        leftovers = leftover_temp_files(folder) if folder else []
        for tmp in leftovers:
            try:
                os.unlink(tmp)
            except FileNotFoundError:  # another rank of the same run removed it first
                pass
        if leftovers:
            warnings.warn(f'--auto_resume: removed {len(leftovers)} incomplete temporary file(s) of an interrupted '
                          f'save in {folder}: {", ".join(osp.basename(t) for t in leftovers)}', stacklevel=2)
    if not osp.isdir(state_dir):
        return None, None
    iters = sorted((int(name[:-len('.state')]) for name in scandir(state_dir, suffix='.state', recursive=False)
                    if name[:-len('.state')].isdigit()), reverse=True)
    for it in iters:
        path = osp.join(state_dir, f'{it}.state')
        state = _complete(path, map_location)
        if state is None:
            continue
        if not all(_complete(net, 'cpu') is not None for net in _resume_network_files(opt, it)):
            continue
        return path, state
    if iters:
        warnings.warn(f'--auto_resume: none of the {len(iters)} training state(s) in {state_dir} is complete; '
                      'starting from scratch (basicsr archives the old experiment folder)', stacklevel=2)
    return None, None


def load_resume_state(opt):
    """Replaces ``basicsr.train.load_resume_state``, which looks for ``experiments/`` relative to the current directory
    instead of root_path, calls ``torch.cuda.current_device()`` (fails without CUDA), unpickles with the defaults and
    takes the newest ``.state`` even when it is half-written.

    ``--auto_resume`` takes the newest *complete* state (:func:`find_resume_state`); ``path: resume_state`` is loaded
    as given (an incomplete file is an error naming it). States are mapped to the CPU when there is no CUDA or
    ``num_gpu: 0`` and loaded with ``weights_only=True``.
    """
    from basicsr.utils import check_resume
    map_location = _map_location(opt)
    if opt['auto_resume']:
        path, state = find_resume_state(opt, map_location)
        if path is None:
            return None
        opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
        if path is None:
            return None
        if not osp.isfile(path):
            raise FileNotFoundError(f'path: resume_state: {path} does not exist')
        state = load_weights_only(path, map_location=map_location)
    check_resume(opt, state['iter'])
    use_existing_network_files(opt)  # check_resume names net_g_<iter>.pth, also when the run saved .safetensors
    return state
