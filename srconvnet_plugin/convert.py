"""Convert a checkpoint written by the authors' SRConvNet code into a BasicSR checkpoint.

Usage::

    python -m srconvnet_plugin.convert model_x4_latest.pt experiments/pretrained_models/SRConvNet_x4.pth

Accepts the authors' training checkpoint (a dict whose ``model_state_dict`` keys start with ``module.``, MeanShift
included) or a bare state dict, prefixed or not. The scale and the configuration are inferred from the tensor shapes;
the output is ``{'params': state_dict}``, which ``SRModel`` loads with ``strict_load_g: true``.
"""
import argparse
import os
import re

import torch

# the reference builds these but never calls them in forward; they are dropped
UNUSED_PREFIXES = ('sub_mean.', 'add_mean.')
# wrappers whose prefix the authors' and BasicSR's savers leave on every key
WRAPPER_PREFIXES = ('module.', )


class CheckpointError(ValueError):
    """A checkpoint that is not an SRConvNet checkpoint in a format this converter knows."""


def load_checkpoint(path):
    """Load ``path`` with ``weights_only=True`` and return its state dict (handles the usual wrappers)."""
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # pickled code, truncated file, not a torch file
        raise CheckpointError(f'{path}: cannot be loaded as a weights-only checkpoint ({err})') from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'{path}: expected a dict, found {type(ckpt).__name__}')
    for key in ('model_state_dict', 'params_ema', 'params', 'state_dict'):
        if key in ckpt and isinstance(ckpt[key], dict):
            return ckpt[key]
    if ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
        return ckpt
    raise CheckpointError(f'{path}: no state dict found; top-level keys: {sorted(map(str, ckpt))}')


def strip_state_dict(state_dict):
    """Remove ``module.`` prefixes and the unused MeanShift entries; returns a new dict in the same order."""
    out = {}
    for key, value in state_dict.items():
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        if not key.startswith(UNUSED_PREFIXES):
            out[key] = value
    return out


def infer_config(state_dict):
    """Read ``SRConvNet`` keyword arguments from the shapes of a (stripped) state dict."""
    required = ('to_feat.weight', 'tail.weight', 'upsampling.0.weight', 'blocks.0.attention.layer_scale',
                'blocks.0.ffn.conv1.conv.aggregation.weight')
    missing = [k for k in required if k not in state_dict]
    if missing:
        raise CheckpointError(f'not an SRConvNet state dict: missing keys {missing}')
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


def check_against_arch(state_dict, config):
    """Check keys and shapes against a freshly built ``SRConvNet(**config)``; raise naming every difference."""
    from srconvnet_plugin.archs.srconvnet_arch import SRConvNet

    try:
        expected = SRConvNet(**config).state_dict()
    except ValueError as err:
        raise CheckpointError(f'inferred config {config} is not a valid SRConvNet: {err}') from err
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state_dict) if expected[k].shape != state_dict[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f'missing keys {missing}')
        if unexpected:
            parts.append(f'unexpected keys {unexpected}')
        if wrong:
            parts.append('wrong shapes ' + ', '.join(
                f'{k}: {tuple(state_dict[k].shape)} != {tuple(expected[k].shape)}' for k in wrong))
        raise CheckpointError(f'state dict does not match SRConvNet({config}): ' + '; '.join(parts))


def convert_state_dict(state_dict):
    """Return ``(basicsr_state_dict, config)`` from an authors' state dict; raise ``CheckpointError`` if unknown."""
    stripped = strip_state_dict(state_dict)
    config = infer_config(stripped)
    check_against_arch(stripped, config)
    return stripped, config


def convert(input_path, output_path, overwrite=False):
    """Convert ``input_path`` to a BasicSR checkpoint at ``output_path``; returns the inferred config."""
    if os.path.exists(output_path) and not overwrite:
        raise FileExistsError(f'{output_path} exists; pass --overwrite to replace it')
    try:
        state_dict, config = convert_state_dict(load_checkpoint(input_path))
    except CheckpointError as err:
        raise CheckpointError(f'{input_path}: {err}') from err
    out_dir = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(out_dir, exist_ok=True)
    output_path = os.fspath(output_path)
    tmp_path = output_path + '.tmp'
    torch.save({'params': state_dict}, tmp_path)
    os.replace(tmp_path, output_path)
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('input', help="checkpoint written by the authors' code (model_x4_latest.pt) or a state dict")
    parser.add_argument('output', help='BasicSR checkpoint to write ({"params": state_dict})')
    parser.add_argument('--overwrite', action='store_true', help='replace OUTPUT if it exists')
    args = parser.parse_args(argv)
    try:
        config = convert(args.input, args.output, overwrite=args.overwrite)
    except (CheckpointError, FileExistsError) as err:
        parser.exit(2, f'error: {err}\n')
    print(f'wrote {args.output}: SRConvNet ' + ', '.join(f'{k}={v}' for k, v in config.items()))
    print(f"option file: network_g: {{type: SRConvNet, {', '.join(f'{k}: {v}' for k, v in config.items())}}}")


if __name__ == '__main__':
    main()
