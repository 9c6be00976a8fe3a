"""Making the networks: each (arch, scale) is built once, its checkpoint loaded once, and that model is measured."""
from dataclasses import dataclass

import torch

from basicsr.archs import build_network
from srconvnet_plugin.compare.presets import (ArchSpec, CompareError, SizeRule, arch_class, input_channels,
                                              is_spandrel, opt_for_scale, size_rule)


def construct(opt):
    """The network ``opt`` describes (scale included), with its initial weights: ``basicsr.archs.build_network`` for
    registered archs, the spandrel class itself for ``spandrel.<Name>``. Also the builder of the fresh process
    that measures CPU memory (``srconvnet_plugin.measure.profiling --builder``)."""
    if is_spandrel(opt['type']):
        return arch_class(opt['type'])(**{k: v for k, v in opt.items() if k != 'type'})
    return build_network(opt)


def load_weights(model, path, name):
    """Load a checkpoint (``.pth``: ``params_ema`` / ``params`` / bare state dict, weights-only; or
    ``.safetensors``) into ``model``; a file that does not fit it is refused naming the file and ``name``."""
    from srconvnet.checkpoints import CheckpointError, check_fits, load_state_dict

    try:
        model.load_state_dict(check_fits(load_state_dict(path), model, f'{path}: does not fit {name}'), strict=True)
    except CheckpointError as err:
        raise CompareError(str(err)) from err


@dataclass
class Network:
    """One built network: the spec it comes from, the scale, the full options, the model (eval mode, on its device,
    checkpoint loaded if one was given) and what its input must look like."""
    spec: ArchSpec
    scale: int
    opt: dict
    model: torch.nn.Module
    channels: int
    rule: SizeRule


def build(spec, scale, device='cpu'):
    """Build ``spec`` at ``scale`` once, load its checkpoint if it has one, move it to ``device``: a ``Network``.
    An arch that rejects its options or a checkpoint that does not fit is a ``CompareError`` naming them."""
    opt = opt_for_scale(spec.opt, scale)
    try:
        model = construct(opt).eval()
    except (TypeError, ValueError, AssertionError, KeyError) as err:
        raise CompareError(f'cannot build {spec.name} from {opt}: {err}') from err
    if spec.weights:
        load_weights(model, spec.weights, f'{spec.name} ×{scale} ({opt})')
    return Network(spec, scale, opt, model.to(device), input_channels(opt), size_rule(opt))
