"""What every export target shares: refusals in one line, the extra to install, the file's metadata, the write."""
import importlib
import os
import re

from srconvnet.atomic_write import atomic_write

#: metadata keys every exported file records (ONNX metadata_props, or the target's own place for them)
SCALE_KEY = 'srconvnet_scale'
INPUT_SIZE_KEY = 'srconvnet_input_size'
TARGET_KEY = 'srconvnet_target'


class ExportError(ValueError):
    """An export that cannot be made; the message says why in one line."""


class MissingPackage(ExportError, ImportError):
    """A runtime or converter package that a target needs is not installed; the message names the extra."""


def require(module, extra, target):
    """``importlib.import_module(module)``, or a ``MissingPackage`` naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingPackage(f"the {target} target needs the {module.split('.')[0]} package ({err}): "
                             f"pip install 'srconvnet-plugin[{extra}]'") from None


def parse_size(text):
    """``'HxW'`` (or an (H, W) pair) → (H, W) of positive ints; ``None`` stays ``None``."""
    if text is None:
        return None
    if isinstance(text, str):
        match = re.fullmatch(r'\s*(\d+)\s*[xX×]\s*(\d+)\s*', text)
        if match is None:
            raise ExportError(f'--input-size must be HxW (e.g. 180x320), got {text!r}')
        size = (int(match.group(1)), int(match.group(2)))
    else:
        size = tuple(int(s) for s in text)
    if len(size) != 2 or min(size) < 1:
        raise ExportError(f'--input-size must be two positive sides HxW, got {text!r}')
    return size


def refuse_existing(path, overwrite):
    """Raise ``FileExistsError`` if ``path`` exists and ``overwrite`` is not set (before any slow export)."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f'{path} exists; pass --overwrite to replace it')


def metadata(model, target, input_size=None):
    """{key: str} a target records in its file: the scale, the target, and the input size where it is fixed."""
    props = {SCALE_KEY: str(model.upscale), TARGET_KEY: target}
    if input_size is not None:
        props[INPUT_SIZE_KEY] = f'{input_size[0]}x{input_size[1]}'
    return props


def write_bytes(path, data, overwrite):
    """Write ``data`` to ``path`` complete or not at all (``atomic_write``); an existing file only if ``overwrite``."""
    atomic_write(os.fspath(path), data, overwrite=overwrite)
    return os.fspath(path)
