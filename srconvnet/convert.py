"""Convert a checkpoint written by the authors' SRConvNet code into a BasicSR checkpoint (``.pth``) or a
``.safetensors`` file.

Usage::

    python -m srconvnet.convert model_x4_latest.pt experiments/pretrained_models/SRConvNet_x4.pth
    python -m srconvnet.convert model_x4_latest.pt SRConvNet_x4.safetensors

Accepts the authors' training checkpoint (a dict whose ``model_state_dict`` keys start with ``module.``, MeanShift
included), a BasicSR checkpoint or a bare state dict, prefixed or not, ``.pth`` or ``.safetensors``. The scale and
the configuration are inferred from the tensor shapes (``checkpoints.py``). A ``.pth`` output is
``{'params': state_dict}``, which ``SRModel`` loads with ``strict_load_g: true``; a ``.safetensors`` output is the
flat state dict, which spandrel, chaiNNer and ComfyUI load (after ``spandrel_support.install()``), and the plugin's
commands and pipelines too. The output is written atomically and never replaces a file unless ``--overwrite``.
"""
import argparse

from srconvnet.checkpoints import CheckpointError, load_srconvnet, save_state_dict


def convert(input_path, output_path, overwrite=False):
    """Convert ``input_path`` to ``output_path`` (``.safetensors``: flat; else ``{'params': ...}``); returns the
    inferred config."""
    state_dict, config = load_srconvnet(input_path)
    try:
        save_state_dict(state_dict, output_path, overwrite=overwrite)
    except FileExistsError as err:
        raise FileExistsError(f'{err}; pass --overwrite to replace it') from err
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('input', help="checkpoint written by the authors' code (model_x4_latest.pt) or a state dict")
    parser.add_argument('output', help='file to write: NAME.safetensors (flat state dict) or NAME.pth '
                        '({"params": state_dict})')
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
