"""Whether the engine may run a network: only the stock SRConvNet, module for module, with unchanged code.

``first_difference(model)`` compares ``model`` with a stock ``SRConvNet`` of the same size (built on the meta
device): every module's class (``type(m) is``, no subclasses), name, configuration (conv sizes, GELU's
``approximate``, PixelShuffle's factor, ...) and parameter shapes; no ``forward`` set on an instance; no forward hook
on a module inside the network (the engine would not call it); and the code of every class the engine re-implements
unchanged: ``fingerprints()`` (a hash of each class's methods, comments and docstrings left out) must equal
``FINGERPRINTS``. Editing ``srconvnet_arch.py`` therefore makes the engine step aside until ``FINGERPRINTS`` is
updated on purpose, after the engine has been checked against the edited modules (tests/test_engine).
"""
import ast
import functools
import hashlib
import inspect
import textwrap
import warnings
import weakref

import torch
from torch.nn.modules import module as module_lib

# sha256 (first 16 hex digits) of each class's methods; tests/test_engine/test_guard.py pins them
FINGERPRINTS = {
    'PointwiseConv': '93dc11618c847dfd',
    'LayerNorm2d': 'c5b99d5dc2ab5ba8',
    'FourierUnit': 'f18e330ed1a4f612',
    'FConvMod': '2da44b3cdbf89a2f',
    'KernelAttention': '6e705eac1b60dae6',
    'KernelAggregation': '7bf591369530d930',
    'DynamicConv': 'eae69dcd2cca1b87',
    'DynamicDWConv': '40d4e648348b8314',
    'MixFFN': 'd425d2abdd555957',
    'BasicBlock': 'd82c89352f0e4571',
    'SRConvNet': 'd55dbada90e01295',
}

# attributes the engine reads with any value
_FREE_ATTRIBUTES = frozenset({'training', 'eps', 'img_range'})
_warned = weakref.WeakSet()


class EngineStepsAside(UserWarning):
    """The network is not the stock SRConvNet; its module forwards run instead of the engine."""


def _arch():
    from srconvnet.archs import srconvnet_arch
    return srconvnet_arch


def engine_classes():
    """The classes whose code the engine re-implements, by name."""
    arch = _arch()
    names = ('PointwiseConv', 'LayerNorm2d', 'FourierUnit', 'FConvMod', 'KernelAttention', 'KernelAggregation',
             'DynamicConv', 'DynamicDWConv', 'MixFFN', 'BasicBlock', 'SRConvNet')
    return {name: getattr(arch, name) for name in names}


@functools.lru_cache(maxsize=256)
def _function_hash(func):
    """Hash of a function's code: its AST without docstrings (comments and formatting do not count)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    for node in ast.walk(tree):
        body = getattr(node, 'body', None)
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def fingerprints():
    """{class name: first 16 hex digits of the sha256 of its methods' code} for ``engine_classes()``."""
    result = {}
    for name, cls in engine_classes().items():
        methods = sorted((k, v) for k, v in vars(cls).items() if inspect.isfunction(v))
        digest = hashlib.sha256()
        for method_name, func in methods:
            digest.update(f'{method_name}:{_function_hash(func)};'.encode())
        result[name] = digest.hexdigest()[:16]
    return result


def _stock(num_in_ch, num_out_ch, num_feat, num_block, num_heads, num_kernels, upscale):
    with torch.device('meta'):
        return _arch().SRConvNet(num_in_ch=num_in_ch, num_out_ch=num_out_ch, num_feat=num_feat, num_block=num_block,
                                 num_heads=num_heads, num_kernels=num_kernels, upscale=upscale)


def _config(module):
    """Plain configuration attributes of a module (conv sizes, GELU's approximate, ...) the engine depends on."""
    return {k: v for k, v in vars(module).items()
            if not k.startswith('_') and k not in _FREE_ATTRIBUTES and isinstance(v, (bool, int, float, str, tuple))}


def _shapes(tensors):
    return [(k, None if v is None else tuple(v.shape)) for k, v in tensors.items()]


@functools.lru_cache(maxsize=16)
def _expected(sizes):
    """(name, class, configuration, parameter shapes, buffer shapes) of every module of a stock SRConvNet."""
    return tuple((name, type(m), _config(m), _shapes(m._parameters), _shapes(m._buffers))
                 for name, m in _stock(*sizes).named_modules())


def _sizes(model):
    """``_stock``'s arguments for ``model`` (heads and kernels from its first FMA and kernel bank, if it has any:
    the module walk then names what is missing)."""
    arch = _arch()
    heads = next((m.num_heads for m in model.modules() if type(m) is arch.FConvMod), 1)
    kernels = next((m.weight.shape[0] for m in model.modules() if type(m) is arch.KernelAggregation), 2)
    return (model.to_feat.in_channels, model.tail.out_channels, model.to_feat.out_channels, len(model.blocks), heads,
            kernels, model.upscale)


def _module_difference(where, mod, cls, config, params, buffers):
    """How module ``mod`` differs from the stock module described by the other arguments, or None."""
    if type(mod) is not cls:
        return f'{where} is {type(mod).__qualname__}, not {cls.__qualname__}'
    attributes = vars(mod)
    if 'forward' in attributes:
        return f'{where} has a forward set on the instance'
    if where != 'the network' and (mod._forward_hooks or mod._forward_pre_hooks):
        return f'{where} has a forward hook (the engine would not call it)'
    for key, value in config.items():
        if attributes.get(key) != value:
            return f'{where} has {key}={attributes.get(key)!r}, the engine implements {key}={value!r}'
    if _shapes(mod._parameters) != params or _shapes(mod._buffers) != buffers:
        return f'{where} has parameters {_shapes(mod._parameters)}, expected {params}'
    return None


def first_difference(model):
    """A sentence naming the first way ``model`` differs from the stock SRConvNet, or None if it does not."""
    arch = _arch()
    if type(model) is not arch.SRConvNet:
        return f'the network is a {type(model).__name__}, not an SRConvNet'
    try:
        expected = _expected(_sizes(model))
    except (AttributeError, TypeError, IndexError, ValueError) as err:
        return f'its sizes cannot be read as an SRConvNet\'s ({type(err).__name__}: {err})'
    actual = dict(model.named_modules())
    for name, cls, config, params, buffers in expected:
        mod = actual.get(name)
        if mod is None:
            return f'{name} is missing (expected {cls.__name__})'
        difference = _module_difference(name or 'the network', mod, cls, config, params, buffers)
        if difference is not None:
            return difference
    if len(actual) != len(expected):
        names = {entry[0] for entry in expected}
        extra = next(name for name in actual if name not in names)
        return f'{extra} is a module the engine does not know ({type(actual[extra]).__qualname__})'
    if module_lib._global_forward_hooks or module_lib._global_forward_pre_hooks:
        return 'a global forward hook is registered (the engine would not call it)'
    found = fingerprints()
    changed = next((name for name in FINGERPRINTS if found.get(name) != FINGERPRINTS[name]), None)
    if changed is not None:
        return (f'the code of {changed} is not the code the engine implements (fingerprint {found.get(changed)}, '
                f'engine {FINGERPRINTS[changed]}; update srconvnet.engine.guard.FINGERPRINTS once the engine '
                f'matches it)')
    return None


def runtime_applies(model, x):
    """Whether the engine is for this call at all: a 4-D float32/float64 CPU input, no autograd, no autocast, eager
    (not traced, scripted or compiled). No warning either way: this is not about the network."""
    return (isinstance(x, torch.Tensor) and x.dim() == 4 and x.device.type == 'cpu'
            and x.dtype in (torch.float32, torch.float64) and not torch.is_grad_enabled()
            and not torch.is_autocast_enabled('cpu') and not torch.jit.is_tracing() and not torch.jit.is_scripting()
            and not torch.compiler.is_compiling())


def accepts(model, x):
    """Whether ``srconvnet.engine.run(model, x)`` may replace ``model(x)``.

    Warns once per model (``EngineStepsAside``, naming the first difference) when ``model`` is not the stock
    SRConvNet; its module forwards then run. Parameters in another dtype or on another device than ``x`` are left to
    the module forwards too (which compute, or raise, exactly as in training).
    """
    if not runtime_applies(model, x):
        return False
    difference = first_difference(model)
    if difference is not None:
        if model not in _warned:
            _warned.add(model)
            warnings.warn(f'srconvnet.engine steps aside: {difference}; this SRConvNet runs its module '
                          f'forwards (same numbers as in training, without the engine\'s speed-ups)',
                          EngineStepsAside, stacklevel=3)
        return False
    weight = model.to_feat.weight
    return all(p.dtype == weight.dtype and p.device == weight.device for p in model.parameters()) and (
        weight.dtype == x.dtype and weight.device == x.device)
