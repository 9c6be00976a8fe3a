"""The one checkpoint reader and writer of the plugin: ``.pth`` and ``.safetensors``, weights only, clear refusals.

Every command and pipeline that loads a network reads it here: ``infer``, ``export``, ``compare``, ``convert``,
BasicSR's ``path: pretrain_network_g`` (``BaseModel.load_network``) and ``--auto_resume``.

* ``.pth`` / ``.pt`` / ``.state`` files are read with ``torch.load(weights_only=True)`` (never ``False``: a
  checkpoint is data, and a pickle that asks for anything but tensors and plain containers could run code).
* ``.safetensors`` files are read with the ``safetensors`` package; they hold one flat state dict.
* The state dict is taken from the usual wrappers: BasicSR's ``params_ema`` (preferred) / ``params``, the authors'
  ``model_state_dict`` (with ``module.`` prefixes and their unused MeanShift ``sub_mean.*`` / ``add_mean.*``
  entries), ``state_dict``, or a bare state dict.
* An SRConvNet's configuration (scale, width, depth, heads, kernels) is read from the tensor shapes.

Refusals raise a :class:`CheckpointError` (a ``ValueError``) whose message names the file and says what is wrong
in a line: :class:`CheckpointNotFoundError`, :class:`CheckpointReadError` (truncated or corrupt),
:class:`CheckpointFormatError` (not a checkpoint at all: empty, text, other data), :class:`CheckpointCodeError` (a
pickle that names classes or functions beyond tensors and plain containers), :class:`CheckpointMismatchError`
(another architecture, or an SRConvNet of another configuration). What a refused file is, is read from the file
itself (its first bytes, the globals its pickle names), not from torch's wording.

Written files: ``.safetensors`` holds the flat state dict (the layout spandrel, chaiNNer, ComfyUI and traiNNer-redux
read), anything else BasicSR's ``{'params': state_dict}``; both through :func:`atomic_write.atomic_write`.
"""
import codecs
import os
import os.path as osp
import pickle
import pickletools
import re
import zipfile

from .atomic_write import atomic_save, atomic_write

SAFETENSORS_SUFFIX = '.safetensors'
#: the reference builds these but never calls them in forward; SRConvNet state dicts drop them
UNUSED_PREFIXES = ('sub_mean.', 'add_mean.')
#: wrappers whose prefix the authors' (DataParallel) and BasicSR's savers leave on every key
WRAPPER_PREFIXES = ('module.', )
#: where a checkpoint file keeps its state dict, in the order they are looked for
STATE_DICT_KEYS = ('params_ema', 'params', 'model_state_dict', 'state_dict')
#: keys every SRConvNet state dict has (after :func:`strip_state_dict`)
SRCONVNET_KEYS = ('to_feat.weight', 'tail.weight', 'upsampling.0.weight', 'blocks.0.attention.layer_scale',
                  'blocks.0.attention.a.conv_layer.weight', 'blocks.0.ffn.conv1.conv.aggregation.weight')
#: how many key names a refusal lists at most (per kind)
SHOWN_KEYS = 3


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what is wrong with it."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """There is no file at the checkpoint's path."""


class CheckpointReadError(CheckpointError, RuntimeError):
    """A checkpoint file that is incomplete or corrupt (e.g. written by a process that was killed mid-save)."""


class CheckpointFormatError(CheckpointReadError):
    """A file that is not a checkpoint at all: empty, text, or data that is neither PyTorch's (a zip archive or a
    pickle) nor safetensors'."""


class CheckpointCodeError(CheckpointError, pickle.UnpicklingError):
    """A pickle that holds more than tensors and plain containers: loading it could run code, so it is refused."""


class CheckpointMismatchError(CheckpointError):
    """A complete checkpoint of another architecture, or of an SRConvNet of another configuration."""


# --------------------------------------------------------------------------------------------------------------------
# reading files
# --------------------------------------------------------------------------------------------------------------------
def is_safetensors(path):
    return os.fspath(path).lower().endswith(SAFETENSORS_SUFFIX)


def _first_sentence(text):
    return re.split(r'(?<=\.)\s', str(text).strip(), maxsplit=1)[0]


def _unpickling_reason(error):
    """What torch's weights-only unpickler refused, without its advice to retry with the unsafe unpickler."""
    paragraphs = [p.strip() for p in str(error).split('\n\n') if p.strip()]
    kept = [p for p in paragraphs if not p.startswith(('Weights only load failed', 'Check the documentation'))]
    named = re.search(r'WeightsUnpickler error:\s*(\S.*)', str(error), re.S)  # inside the advice paragraph
    return ' '.join(kept) or (named and _first_sentence(named.group(1))) or _first_sentence(error)


def _size(path):
    size = osp.getsize(path)
    return f'{size} byte{"s" * (size != 1)}'


def _device(map_location):
    """A device string for safetensors from a ``torch.load`` map_location (basicsr passes a function: CPU)."""
    if map_location is None or callable(map_location):
        return 'cpu'
    return str(map_location)


#: the first bytes of PyTorch's files: a zip archive (torch.save since 1.6), a pickle of protocol 2 to 5 (legacy)
ZIP_MAGIC = b'PK\x03\x04'
PICKLE_PROTOCOLS = tuple(bytes((0x80, p)) for p in range(2, 6))
#: pickle opcodes that push a string (the module and name a STACK_GLOBAL takes)
_STRING_OPCODES = {'SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE', 'SHORT_BINSTRING', 'BINSTRING', 'STRING'}


def _head(path, size=64):
    with open(path, 'rb') as f:
        return f.read(size)


def _not_a_checkpoint(path, head, what='a PyTorch checkpoint or .safetensors file'):
    """The refusal of a file that is not ``what``: empty, text (its first words shown) or other binary data."""
    size = osp.getsize(path)
    if size == 0:
        return CheckpointFormatError(f'{path}: not {what}: the file is empty (0 bytes)')
    text = codecs.getincrementaldecoder('utf-8')(errors='replace').decode(head)  # a cut last character: held back
    if '\ufffd' not in text and all(c.isprintable() or c in '\t\r\n' for c in text):
        first = text.strip().splitlines()[0] if text.strip() else ''
        return CheckpointFormatError(f'{path}: not {what}: {_size(path)} of text, beginning {first[:40]!r}')
    return CheckpointFormatError(f'{path}: not {what}: {_size(path)} of binary data that is neither a zip archive '
                                 f'nor a pickle (PyTorch\'s formats) nor safetensors, beginning {head[:8].hex(" ")}')


def _pickled_globals(stream, most=8):
    """``(globals, pickles)``: the ``module.name`` of each class or function that the pickles at the start of
    ``stream`` name (GLOBAL, STACK_GLOBAL, INST), read one after the other until the end or the first that does not
    parse (a legacy file's tensor bytes follow its pickles), and how many parsed to their STOP."""
    found, strings, parsed = [], [], 0
    while parsed < most:
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                if opcode.name in ('GLOBAL', 'INST'):
                    found.append(arg.replace(' ', '.'))
                elif opcode.name == 'STACK_GLOBAL':
                    found.append('.'.join(strings[-2:]))
                elif opcode.name in _STRING_OPCODES:
                    strings.append(str(arg))
        except Exception:  # not (or no longer) a pickle: opcodes it does not know, the end of the data
            break
        parsed += 1
    return found, parsed


def _checkpoint_globals(path, head):
    """``(globals, pickles)`` of a PyTorch file's pickle (``<name>/data.pkl`` of a zip checkpoint, else the pickles
    the legacy format starts with); ``([], 0)`` when it cannot be read."""
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith('data.pkl')), None)
                if name is None:
                    return [], 0
                with archive.open(name) as stream:
                    return _pickled_globals(stream)
        except (zipfile.BadZipFile, OSError, EOFError):
            return [], 0
    with open(path, 'rb') as stream:
        return _pickled_globals(stream)


def _is_tensor_machinery(name):
    """Whether a pickled global is one that every ``torch.save`` file names (tensor rebuilders, storage types,
    OrderedDict): not what makes a refused file a refused one."""
    return (name.startswith('torch._utils._rebuild_') or name == 'collections.OrderedDict'
            or (name.startswith('torch.') and name.endswith('Storage')))


def _refusal(path, error):
    """The :class:`CheckpointError` for a file that ``torch.load(weights_only=True)`` raised ``error`` on, from what
    the file is: not PyTorch's at all, a pickle naming classes or functions (code), or a damaged checkpoint."""
    head = _head(path)
    if not head.startswith((ZIP_MAGIC, ) + PICKLE_PROTOCOLS):
        return _not_a_checkpoint(path, head)
    if isinstance(error, pickle.UnpicklingError):
        names, parsed = _checkpoint_globals(path, head)
        code = [n for n in dict.fromkeys(names) if not _is_tensor_machinery(n)]
        if code:
            shown = ', '.join(code[:3]) + (f' and {len(code) - 3} more' if len(code) > 3 else '')
            return CheckpointCodeError(f'{path}: refusing to load: the file holds more than tensors and plain '
                                       f'containers ({shown}), so loading it could run code '
                                       f'({_unpickling_reason(error)})')
        if parsed and not head.startswith(ZIP_MAGIC):
            return CheckpointFormatError(f'{path}: not a PyTorch checkpoint or .safetensors file: {_size(path)}, a '
                                         'pickle that torch.load does not read as weights '
                                         f'({_unpickling_reason(error)})')
    said = _unpickling_reason(error) if isinstance(error, pickle.UnpicklingError) else _first_sentence(error)
    return CheckpointReadError(f'{path}: not a complete checkpoint (truncated or corrupt): {_size(path)}, torch says: '
                               f'{said or error.__class__.__name__}')


def load_weights_only(path, map_location='cpu'):
    """What the file ``path`` holds: ``torch.load(path, weights_only=True)``, or the flat state dict of a
    ``.safetensors`` file.

    Raises:
        CheckpointNotFoundError: there is no such file (a ``FileNotFoundError``).
        CheckpointFormatError: the file is not a checkpoint at all (empty, text, other data).
        CheckpointCodeError: the pickle names classes or functions beyond tensors and plain containers (loading it
            could run code).
        CheckpointReadError: the file is truncated or corrupt.
    """
    if not osp.exists(path):
        raise CheckpointNotFoundError(f'{path}: no such file')
    if osp.isdir(path):
        raise CheckpointReadError(f'{path}: is a folder, not a checkpoint file')
    if osp.getsize(path) == 0:
        raise _not_a_checkpoint(path, b'')
    if is_safetensors(path):
        from safetensors.torch import load_file
        try:
            return load_file(os.fspath(path), device=_device(map_location))
        except Exception as e:  # SafetensorError: truncated, not a safetensors file, bad header
            head = _head(path, 9)
            if len(head) < 9 or head[8:9] != b'{':  # 8 bytes of header length, then the JSON header
                raise _not_a_checkpoint(path, _head(path), 'a .safetensors file') from e
            raise CheckpointReadError(f'{path}: not a complete .safetensors file (truncated or corrupt): '
                                      f'{_size(path)}, safetensors says: {_first_sentence(e)}') from e
    import torch
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise
    except Exception as e:  # UnpicklingError, zip reader errors, EOFError, KeyError of the legacy format on junk, ...
        raise _refusal(path, e) from e


def state_dict_of(checkpoint, path, param_key=None):
    """The state dict inside what :func:`load_weights_only` returned: ``checkpoint[param_key]`` when given and
    present, else the first of :data:`STATE_DICT_KEYS` that holds a dict, else ``checkpoint`` itself when it is a
    dict of tensors."""
    import torch
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{path}: holds a {type(checkpoint).__name__}, not a state dict')
    keys = ((param_key, ) if param_key else ()) + STATE_DICT_KEYS
    for key in keys:
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    if checkpoint and all(torch.is_tensor(v) for v in checkpoint.values()):
        return checkpoint
    raise CheckpointError(f'{path}: no state dict found (none of {", ".join(STATE_DICT_KEYS)}, and not a dict of '
                          f'tensors); top-level keys: {", ".join(sorted(map(str, checkpoint))[:10])}')


def load_state_dict(path, param_key=None, map_location='cpu'):
    """The state dict of the checkpoint file ``path`` (``.pth`` or ``.safetensors``), as saved (prefixes kept)."""
    return state_dict_of(load_weights_only(path, map_location), path, param_key)


# --------------------------------------------------------------------------------------------------------------------
# what a state dict is
# --------------------------------------------------------------------------------------------------------------------
def strip_prefixes(state_dict):
    """Remove the ``module.`` prefixes of wrapped networks; a new dict in the same order."""
    out = {}
    for key, value in state_dict.items():
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def strip_state_dict(state_dict):
    """Remove ``module.`` prefixes and the unused MeanShift entries of an SRConvNet state dict."""
    return {k: v for k, v in strip_prefixes(state_dict).items() if not k.startswith(UNUSED_PREFIXES)}


def is_srconvnet(state_dict):
    """Whether a state dict (prefixed or not, MeanShift or not) has the keys every SRConvNet has."""
    keys = set(strip_state_dict(state_dict))
    return all(k in keys for k in SRCONVNET_KEYS)


def infer_config(state_dict):
    """``SRConvNet`` keyword arguments read from the shapes of a (stripped) state dict."""
    missing = [k for k in SRCONVNET_KEYS if k not in state_dict]
    if missing:
        raise CheckpointMismatchError(f'not an SRConvNet state dict: missing keys {missing}')
    num_feat, num_in_ch = state_dict['to_feat.weight'].shape[:2]
    num_block = 1 + max(int(m.group(1)) for k in state_dict for m in [re.match(r'blocks\.(\d+)\.', k)] if m)
    if 'upsampling.3.weight' in state_dict:
        upscale = 4
    else:
        ratio = state_dict['upsampling.0.weight'].shape[0] // num_feat
        upscale = int(round(ratio**0.5))
    return {
        'num_in_ch': int(num_in_ch),
        'num_out_ch': int(state_dict['tail.weight'].shape[0]),
        'num_feat': int(num_feat),
        'num_block': int(num_block),
        'num_heads': int(state_dict['blocks.0.attention.layer_scale'].shape[0]),
        'num_kernels': int(state_dict['blocks.0.ffn.conv1.conv.aggregation.weight'].shape[0]),
        'upscale': int(upscale),
    }


def describe_config(config, noun=''):
    """``SRConvNet x3<noun> (num_feat 64, 8 blocks, 4 heads, 4 kernels)`` (channels only when not RGB)."""
    parts = [f'num_feat {config["num_feat"]}', f'{config["num_block"]} block{"s" * (config["num_block"] != 1)}',
             f'{config["num_heads"]} heads', f'{config["num_kernels"]} kernels']
    if (config['num_in_ch'], config['num_out_ch']) != (3, 3):
        parts.append(f'{config["num_in_ch"]}->{config["num_out_ch"]} channels')
    return f'SRConvNet x{config["upscale"]}{noun} ({", ".join(parts)})'


def key_patterns(keys, limit=6):
    """What key names look like: ``conv_first, body.N, conv_after_body, upsample.N, conv_last`` (first ``limit``
    groups, in order; a numeric second part becomes ``N``)."""
    groups = []
    for key in keys:
        parts = key.split('.')[:-1] or key.split('.')
        group = parts[0] + ('.N' if len(parts) > 1 and parts[1].isdigit() else '')
        if group not in groups:
            groups.append(group)
    shown = ', '.join(groups[:limit])
    return shown + (f', ... ({len(groups)} groups)' if len(groups) > limit else '')


def _some(keys):
    keys = sorted(keys)
    return ', '.join(keys[:SHOWN_KEYS]) + (', ...' if len(keys) > SHOWN_KEYS else '')


def describe_difference(state_dict, expected, wanted_by='the network is'):
    """``''`` when ``state_dict`` fits a network whose ``state_dict()`` is ``expected``; otherwise what is wrong, in
    one line: which SRConvNet each side is when both are (``wanted_by`` introduces the network's: ``'network_g asks
    for'``), what the keys of another architecture look like, and how many keys differ, with a few of them."""
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    wrong = {k for k in set(expected) & set(state_dict) if tuple(expected[k].shape) != tuple(state_dict[k].shape)}
    if not (missing or unexpected or wrong):
        return ''
    wanted = infer_config(expected) if is_srconvnet(expected) else None
    found = None
    if is_srconvnet(state_dict):
        try:
            found = infer_config(state_dict)
        except (ValueError, IndexError):
            pass
        if found is not None and wanted is not None and found != wanted:
            return f'an {describe_config(found, " checkpoint")}; {wanted_by} {describe_config(wanted)}'
    elif wanted is not None:
        shared = len(expected) - len(missing)
        return (f'not an SRConvNet checkpoint (another architecture: its {len(state_dict)} keys look like '
                f'{key_patterns(state_dict)}); {len(unexpected)} of its keys are not SRConvNet keys, and it has '
                f'{shared or "none"} of the {len(expected)} keys of {describe_config(wanted)}')
    parts = [f'an {describe_config(found, " checkpoint")}'] if found is not None and wanted is None else []
    if missing:
        parts.append(f'{len(missing)} missing key{"s" * (len(missing) != 1)} ({_some(missing)})')
    if unexpected:
        parts.append(f'{len(unexpected)} unexpected key{"s" * (len(unexpected) != 1)} ({_some(unexpected)})')
    if wrong:
        shown = sorted(wrong)[:SHOWN_KEYS]
        parts.append(f'{len(wrong)} key{"s" * (len(wrong) != 1)} of another shape (' + ', '.join(
            f'{k}: {tuple(state_dict[k].shape)} in the file, {tuple(expected[k].shape)} expected' for k in shown) +
            (', ...' if len(wrong) > SHOWN_KEYS else '') + ')')
    return '; '.join(parts)


def check_against_arch(state_dict, config):
    """Check keys and shapes against a freshly built ``SRConvNet(**config)``; raise what differs."""
    from srconvnet.archs.srconvnet_arch import SRConvNet
    try:
        expected = SRConvNet(**config).state_dict()
    except ValueError as err:
        raise CheckpointMismatchError(f'inferred config {config} is not a valid SRConvNet: {err}') from err
    problem = describe_difference(state_dict, expected)
    if problem:
        raise CheckpointMismatchError(f'state dict does not match {describe_config(config)}: {problem}')


def srconvnet_state_dict(state_dict, source=None):
    """``(stripped state dict, config)`` of an SRConvNet state dict in any layout; raises
    :class:`CheckpointMismatchError` (naming ``source`` when given) if it is not a consistent SRConvNet."""
    stripped = strip_state_dict(state_dict)
    try:
        if not is_srconvnet(stripped):
            raise CheckpointMismatchError(
                f'not an SRConvNet checkpoint (another architecture: its {len(stripped)} keys look like '
                f'{key_patterns(stripped)}); it lacks {sum(k not in stripped for k in SRCONVNET_KEYS)} of the '
                f'{len(SRCONVNET_KEYS)} keys every SRConvNet has '
                f'({_some(k for k in SRCONVNET_KEYS if k not in stripped)})')
        config = infer_config(stripped)
        check_against_arch(stripped, config)
    except CheckpointMismatchError as err:
        if source is None:
            raise
        raise CheckpointMismatchError(f'{source}: {err}') from err
    return stripped, config


def load_srconvnet(path, param_key=None):
    """``(stripped state dict, config)`` of the SRConvNet checkpoint file ``path`` (any layout, either format)."""
    return srconvnet_state_dict(load_state_dict(path, param_key), path)


def check_fits(state_dict, net, source, strict=True, wanted_by='the network is'):
    """The state dict to load into ``net``: ``module.`` prefixes stripped (and for an SRConvNet the MeanShift
    entries); with ``strict``, :class:`CheckpointMismatchError` naming ``source`` unless it fits ``net`` exactly."""
    from srconvnet.archs.srconvnet_arch import SRConvNet
    state_dict = strip_state_dict(state_dict) if isinstance(net, SRConvNet) else strip_prefixes(state_dict)
    problem = describe_difference(state_dict, net.state_dict(), wanted_by) if strict else ''
    if problem:
        raise CheckpointMismatchError(f'{source}: {problem}')
    return state_dict


# --------------------------------------------------------------------------------------------------------------------
# writing files
# --------------------------------------------------------------------------------------------------------------------
def save_state_dict(state_dict, path, overwrite=False):
    """Write ``state_dict`` to ``path`` atomically: flat in a ``.safetensors`` file, else BasicSR's
    ``{'params': state_dict}``. ``overwrite=False`` never replaces an existing file (:class:`FileExistsError`)."""
    if is_safetensors(path):
        from safetensors.torch import save
        data = save({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, metadata={'format': 'pt'})
        return atomic_write(path, data, overwrite=overwrite)
    return atomic_save({'params': state_dict}, path, overwrite=overwrite)
