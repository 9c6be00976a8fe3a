"""What can be compared: the presets, the plugin's archs, spandrel's archs and options given on the command line.

A network is described by ``network_g``-style options without the scale: ``{'type': 'EDSR', 'num_feat': 64, ...}``
for an arch in BasicSR's ``ARCH_REGISTRY`` (BasicSR's own and the plugin's), ``{'type': 'spandrel.SAFMN', 'dim': 36,
...}`` for the class ``spandrel.architectures.SAFMN.SAFMN`` (spandrel installed: the ``spandrel`` extra).
"""
import argparse
import importlib
import inspect
import math
import pkgutil
from collections import OrderedDict
from dataclasses import dataclass, field

import yaml

from basicsr.utils.registry import ARCH_REGISTRY

#: the ``type`` prefix of an arch built from spandrel's classes
SPANDREL_PREFIX = 'spandrel.'
SPANDREL_INSTALL = "pip install 'srconvnet-plugin[spandrel]'"

# Lightweight configurations of BasicSR's own archs (scale argument left out; it is added per run).
PRESETS = OrderedDict([
    # SwinIR paper, lightweight SR (BasicSR options/train/SwinIR/train_SwinIR_SRx4_scratch_P48W8_DIV2K_500k_B4G8)
    ('SwinIR-light', dict(type='SwinIR', in_chans=3, img_size=64, window_size=8, img_range=1., depths=[6, 6, 6, 6],
                          embed_dim=60, num_heads=[6, 6, 6, 6], mlp_ratio=2, upsampler='pixelshuffledirect',
                          resi_connection='1conv')),
    # EDSR paper's baseline (BasicSR options/train/EDSR/train_EDSR_Mx4.yml)
    ('EDSR-baseline', dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, res_scale=1,
                           img_range=255., rgb_mean=[0.4488, 0.4371, 0.4040])),
    # Real-ESRGAN's realesr-general-x4v3 ("S size", num_conv 32); realesr-animevideov3 ("XS size") is num_conv 16.
    # basicsr registers it with suffix: 'SRVGGNetCompact_basicsr' is the registry key (Real-ESRGAN's own is
    # the same class without the suffix).
    ('SRVGGNetCompact', dict(type='SRVGGNetCompact_basicsr', num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=32,
                             act_type='prelu')),
    ('SRVGGNetCompact-XS', dict(type='SRVGGNetCompact_basicsr', num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16,
                                act_type='prelu')),
    # ECBSR-M4C16 (BasicSR options/train/ECBSR/train_ECBSR_x4_m4c16_prelu.yml): trained and run on the Y channel
    ('ECBSR', dict(type='ECBSR', num_in_ch=1, num_out_ch=1, num_block=4, num_channel=16, with_idt=False,
                   act_type='prelu')),
    # SRResNet with BasicSR's MSRResNet body (BasicSR options/train/SRResNet_SRGAN/train_MSRResNet_x4.yml)
    ('MSRResNet', dict(type='MSRResNet', num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16)),
])

# Lightweight networks from spandrel's own arch classes, configured as their authors' released lightweight models.
SPANDREL_PRESETS = OrderedDict([
    # SAFMN (Sun et al., ICCV 2023), the released lightweight model: dim 36, 8 blocks
    ('SAFMN', dict(type='spandrel.SAFMN', dim=36, n_blocks=8, ffn_scale=2.0)),
    # SPAN (NTIRE 2024 efficient SR winner): 48 feature channels
    ('SPAN', dict(type='spandrel.SPAN', num_in_ch=3, num_out_ch=3, feature_channels=48)),
    # Omni-SR (CVPR 2023), lightweight: 64 features, 5 residual groups of 1 block, window 8
    ('OmniSR', dict(type='spandrel.OmniSR', num_in_ch=3, num_out_ch=3, num_feat=64, block_num=1, pe=True,
                    window_size=8, res_num=5, bias=True)),
    # PLKSR-tiny (Lee and Kim, 2024): 12 blocks, 13×13 partial kernels, double-conv channel mixer, no EA
    ('PLKSR-tiny', dict(type='spandrel.PLKSR', dim=64, n_blocks=12, ccm_type='DCCM', kernel_size=13, split_ratio=0.25,
                        lk_type='PLK', use_ea=False)),
    # Real-ESRGAN Compact (SRVGGNetCompact) 64 features, 16 convs: realesr-animevideov3's size
    ('Compact', dict(type='spandrel.Compact', num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, act_type='prelu')),
    # SwinIR-light as above, spandrel's copy of the arch (it pads to its window inside forward)
    ('SwinIR-light-spandrel', dict(type='spandrel.SwinIR', in_chans=3, img_size=64, window_size=8, img_range=1.,
                                   depths=[6, 6, 6, 6], embed_dim=60, num_heads=[6, 6, 6, 6], mlp_ratio=2,
                                   upsampler='pixelshuffledirect', resi_connection='1conv')),
])

DEFAULT_OUTPUT = (720, 1280)  # (H, W) of the HR image the default LR input produces: 1280×720
SCALE_KEYS = ('upscale', 'scale', 'upscaling_factor', 'up_scale')  # how archs name their scale argument


class CompareError(ValueError):
    """Bad command-line input: unknown arch, malformed option, unusable weights or images."""


@dataclass
class ArchSpec:
    """A network to compare: display name and options without the scale."""
    name: str
    opt: dict
    source: str  # 'preset', 'spandrel', 'plugin' or 'arch-opt'
    weights: str = None
    notes: list = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------- spandrel
def spandrel_available():
    """Whether spandrel's arch classes can be imported."""
    try:
        import spandrel.architectures  # noqa: F401
    except ImportError:
        return False
    return True


def spandrel_missing_line():
    """The one line that says the spandrel presets need spandrel, and how to install it."""
    return (f'spandrel presets ({", ".join(SPANDREL_PRESETS)}) unavailable: spandrel is not installed; '
            f'{SPANDREL_INSTALL}')


def is_spandrel(arch_type):
    return arch_type.startswith(SPANDREL_PREFIX)


def spandrel_archs():
    """Names of spandrel's arch packages (``spandrel.architectures.<Name>``); empty without spandrel."""
    if not spandrel_available():
        return []
    import spandrel.architectures
    return sorted(m.name for m in pkgutil.iter_modules(spandrel.architectures.__path__) if not m.name.startswith('_'))


def arch_class(arch_type):
    """The class (or builder function) ``arch_type`` names: from ``ARCH_REGISTRY``, or ``spandrel.<Name>`` =
    ``spandrel.architectures.<Name>.<Name>``; a ``CompareError`` naming what is available otherwise."""
    if not is_spandrel(arch_type):
        if arch_type not in ARCH_REGISTRY:
            raise CompareError(f'type {arch_type!r} is not a registered arch; registered: '
                               f'{", ".join(registered_archs())} (and spandrel.<Name> for spandrel\'s archs)')
        return ARCH_REGISTRY.get(arch_type)
    if not spandrel_available():
        raise CompareError(f'type {arch_type!r} needs spandrel, which is not installed: {SPANDREL_INSTALL}')
    name = arch_type[len(SPANDREL_PREFIX):]
    cls = None
    if name in spandrel_archs():
        cls = getattr(importlib.import_module(f'spandrel.architectures.{name}'), name, None)
    if cls is None:
        raise CompareError(f'type {arch_type!r}: spandrel has no arch class {name}; its archs: '
                           f'{", ".join(spandrel_archs())}')
    return cls


# ------------------------------------------------------------------------------------------------------------- archs
def registered_archs():
    """Sorted names of every arch in basicsr's ARCH_REGISTRY (BasicSR's own and the plugin's)."""
    return sorted(name for name, _ in ARCH_REGISTRY)


def plugin_archs():
    """Archs registered by this plugin (the core's network and any arch under the toolbox package), with their
    default arguments."""
    return OrderedDict((name, dict(type=name)) for name, obj in sorted(ARCH_REGISTRY)
                       if getattr(obj, '__module__', '').split('.')[0] in ('srconvnet', 'srconvnet_plugin'))


def available_archs():
    """Name -> options of every arch usable by name: the plugin's archs, the presets, and the spandrel presets
    where spandrel is installed."""
    archs = plugin_archs()
    archs.update(PRESETS)
    if spandrel_available():
        archs.update(SPANDREL_PRESETS)
    return archs


def parse_arch_opt(text):
    """Parse ``'type=SwinIR,embed_dim=60,depths=[6,6,6,6]'`` into a dict; values are read as YAML scalars/lists."""
    items, depth, current = [], 0, ''
    for char in text:
        if char in '[{(':
            depth += 1
        elif char in ']})':
            depth -= 1
        if char == ',' and depth == 0:
            items.append(current)
            current = ''
        else:
            current += char
    items.append(current)
    opt = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        if '=' not in item:
            raise CompareError(f'--arch-opt {text!r}: {item!r} is not KEY=VALUE')
        key, value = (s.strip() for s in item.split('=', 1))
        try:
            opt[key] = yaml.safe_load(value.replace('(', '[').replace(')', ']'))
        except yaml.YAMLError as err:
            raise CompareError(f'--arch-opt {text!r}: cannot read the value of {key!r}: {err}') from err
    if 'type' not in opt:
        raise CompareError(f"--arch-opt {text!r}: needs 'type=ARCH' (one of the registered archs: "
                           f'{", ".join(registered_archs())}; or spandrel.<Name>)')
    try:
        arch_class(str(opt['type']))
    except CompareError as err:
        raise CompareError(f'--arch-opt {text!r}: {err}') from None
    return opt


def resolve_archs(names, arch_opts=()):
    """``ArchSpec`` list for ``names`` (presets / plugin archs) followed by ``arch_opts`` = [(NAME, 'type=X,...')]."""
    available = available_archs()
    custom = OrderedDict((name, parse_arch_opt(text)) for name, text in arch_opts)
    missing = [n for n in names if n in SPANDREL_PRESETS and n not in available and n not in custom]
    if missing:
        raise CompareError(f'{", ".join(missing)}: {spandrel_missing_line()}')
    unknown = [n for n in names if n not in available and n not in custom]
    if unknown:
        raise CompareError(
            f'unknown arch {", ".join(map(repr, unknown))}. Available: {", ".join(available)}. Any registered arch '
            f"can be added with --arch-opt NAME 'type=X,...'; registered: {', '.join(registered_archs())}")
    specs = []
    for name in list(names) + [n for n in custom if n not in names]:
        if name in custom:
            specs.append(ArchSpec(name, custom[name], 'arch-opt'))
        else:
            source = 'preset' if name in PRESETS else 'spandrel' if name in SPANDREL_PRESETS else 'plugin'
            specs.append(ArchSpec(name, dict(available[name]), source))
    return specs


# ------------------------------------------------------------------------------------------- what an arch needs
def _signature(arch_type):
    return inspect.signature(arch_class(arch_type)).parameters


def opt_for_scale(opt, scale):
    """Copy of ``opt`` with the arch's own scale argument (``upscale``, ``scale``, ``upscaling_factor`` or
    ``up_scale``) set to ``scale``."""
    params = _signature(opt['type'])
    key = next((k for k in SCALE_KEYS if k in params), None)
    if key is None:
        raise CompareError(f"arch {opt['type']} has no scale argument (none of {', '.join(SCALE_KEYS)})")
    if key in opt and int(opt[key]) != scale:
        raise CompareError(f"options {opt} set {key}={opt[key]}, but this run is for scale {scale}")
    return dict(opt, **{key: scale})


def _opt_value(opt, key, default=None):
    """``opt[key]``, else the arch's default for that argument, else ``default``."""
    if key in opt:
        return opt[key]
    param = _signature(opt['type']).get(key)
    return param.default if param is not None and param.default is not inspect.Parameter.empty else default


def input_channels(opt):
    """Channels the arch takes (``num_in_ch`` / ``in_chans``; 3 if it names neither)."""
    for key in ('num_in_ch', 'in_chans'):
        value = _opt_value(opt, key)
        if value is not None:
            return int(value)
    return 3


@dataclass(frozen=True)
class SizeRule:
    """The input sizes an arch accepts: each side at least ``minimum`` and a multiple of ``multiple``; ``why`` says
    whose rule it is. ``window`` > 1: the arch pads to that multiple inside its own forward."""
    minimum: int = 0
    multiple: int = 1
    why: str = ''
    window: int = 1

    def padded(self, size):
        """The (H, W) this rule turns ``size`` into (bottom/right padding)."""
        return tuple(int(math.ceil(max(s, self.minimum) / self.multiple) * self.multiple) for s in size)


def size_rule(opt):
    """What input sizes the arch of ``opt`` accepts. BasicSR's SwinIR: multiples of its window, as BasicSR's
    ``SwinIRModel.test`` pads; spandrel's archs: the ``size_requirements`` of spandrel's descriptor for them
    (``<Name>Arch().load``: SAFMN multiples of 8, OmniSR and SwinIR at least 16)."""
    arch_type = opt['type']
    if arch_type == 'SwinIR':
        return SizeRule(multiple=int(_opt_value(opt, 'window_size', 7)), why='as SwinIRModel.test')
    if arch_type == 'spandrel.SAFMN':
        return SizeRule(multiple=8, why="spandrel's size requirement")
    if arch_type == 'spandrel.OmniSR':
        return SizeRule(minimum=16, why="spandrel's size requirement", window=int(_opt_value(opt, 'window_size', 8)))
    if arch_type == 'spandrel.SwinIR':
        unshuffle = int(_opt_value(opt, 'start_unshuffle', 1))
        return SizeRule(minimum=16, multiple=unshuffle**2, why="spandrel's size requirement",
                        window=int(_opt_value(opt, 'window_size', 7)) * unshuffle)
    return SizeRule()


def default_input_size(scale):
    """The LR (H, W) whose ×``scale`` output covers 1280×720 (rounded up): 360×640, 240×427, 180×320."""
    return tuple(math.ceil(s / scale) for s in DEFAULT_OUTPUT)


def parse_size(text):
    """'180x320', '180,320' or '64' (square) -> (H, W)."""
    parts = text.lower().replace(',', 'x').split('x')
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f'input size {text!r}: expected HxW or N') from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f'input size {text!r}: expected HxW or N with positive integers')
    return values
