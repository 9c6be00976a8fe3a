"""Shared by the ComfyUI tests: the node folder imported as ComfyUI imports a custom node, spandrel descriptors of
SRConvNet as ComfyUI's "Load Upscale Model" hands them out, and ComfyUI IMAGE tensors."""
import importlib.util
import sys
from pathlib import Path

import torch

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / 'test_checkpoints'))

from checkpoint_files import authors_checkpoint, srconvnet  # noqa: E402  (the checkpoint tests' networks)

NODE_FOLDER = TESTS.parent / 'comfyui_srconvnet'
__all__ = ['authors_checkpoint', 'srconvnet', 'load_node_folder', 'descriptor', 'comfy_image', 'as_lq']


def load_node_folder(module_name='custom_nodes_x_comfyui_srconvnet'):
    """Import ``comfyui_srconvnet/__init__.py`` by its path under a name of the host's choosing, the way a custom
    node folder is imported (so the folder's own relative imports are what is tested)."""
    spec = importlib.util.spec_from_file_location(module_name, NODE_FOLDER / '__init__.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def descriptor(upscale=4, seed=0, **config):
    """What ComfyUI's "Load Upscale Model" hands out for an SRConvNet file: spandrel's ModelLoader on the state
    dict, in eval mode (SRConvNet must be installed in spandrel first)."""
    from spandrel import ModelLoader
    return ModelLoader().load_from_state_dict(srconvnet(upscale, seed=seed, **config).state_dict()).eval()


def comfy_image(*shape, seed=0):
    """A ComfyUI IMAGE, batch x height x width x channels float32 in [0, 1], of 8-bit values as LoadImage gives."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, shape, generator=g).float() / 255


def as_lq(image):
    """One image of an IMAGE batch (h x w x c) as the network's 1 x c x h x w input."""
    return image.movedim(-1, 0).unsqueeze(0)
