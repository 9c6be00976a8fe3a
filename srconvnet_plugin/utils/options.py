"""Safe reading of BasicSR option files.

basicsr 1.4.2 reads option files with PyYAML's full ``Loader`` (``basicsr.utils.options.ordered_yaml``), which builds
arbitrary Python objects from tags: an option value ``!!python/object/apply:os.system ["..."]`` runs a shell command.
``OptionLoader`` is PyYAML's safe loader plus basicsr's ordered mappings; everything else basicsr accepts
(``!!float 2e-4``, key order, anchors) keeps working, and any other tag is refused with the file and line at fault.
"""
from collections import OrderedDict

import yaml

_SafeBase = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)


class OptionFileError(ValueError):
    """An option file that cannot be used; the message names the file (and line) at fault."""


class OptionLoader(_SafeBase):
    """``yaml.SafeLoader`` (libyaml when available) that returns mappings as ``OrderedDict`` like basicsr's loader."""


def _construct_ordered_mapping(loader, node):
    return OrderedDict(loader.construct_pairs(node))


def _refuse_tag(loader, node):
    mark = node.start_mark
    raise OptionFileError(f'{mark.name}, line {mark.line + 1}, column {mark.column + 1}: refusing the YAML tag '
                          f'{node.tag!r}: option files may only hold plain values (Python object tags could run code)')


OptionLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_ordered_mapping)
# ``None`` is PyYAML's fallback for every tag without a constructor (all ``!!python/...`` tags in a safe loader).
OptionLoader.add_constructor(None, _refuse_tag)


def load_options(path):
    """Read the option file ``path`` safely and return its top-level mapping as an ``OrderedDict``.

    Raises:
        OptionFileError: the file is missing, is not valid YAML, holds a refused tag, or is not a mapping.
    """
    path = str(path)
    try:
        with open(path, encoding='utf-8') as f:
            opt = yaml.load(f, Loader=OptionLoader)  # noqa: S506  (OptionLoader is a SafeLoader)
    except OSError as e:
        raise OptionFileError(f'{path}: cannot read the option file ({e.strerror})') from e
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f'{path}, line {mark.line + 1}, column {mark.column + 1}' if mark else path
        raise OptionFileError(f'{where}: not a valid option file: {e.problem or e}') from e
    if not isinstance(opt, dict):
        raise OptionFileError(f'{path}: an option file must be a YAML mapping (name: ..., network_g: ...), '
                              f'got {type(opt).__name__}')
    return opt
