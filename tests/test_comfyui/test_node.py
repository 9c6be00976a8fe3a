"""The ComfyUI node's logic without ComfyUI: real spandrel descriptors, the core's tiler, srconvnet-infer's images.

The node folder is imported the way ComfyUI imports a custom node (its ``__init__.py`` by file location, under a
module name of ComfyUI's choosing), so its relative import and its spandrel registration are what ComfyUI gets.
scripts/comfyui_check.py runs the same node in a real ComfyUI server.
"""
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from spandrel import ModelLoader
from spandrel.architectures.Compact import Compact

from comfyui_helpers import NODE_FOLDER, as_lq, comfy_image, descriptor, load_node_folder
from conftest import REPO_ROOT
from srconvnet.infer import upscale_image
from srconvnet.tiling import tile_boxes, upscale_tensor


@pytest.fixture(scope='module')
def node_module():
    return load_node_folder()


@pytest.fixture(scope='module')
def nodes(node_module):
    return sys.modules[f'{node_module.__name__}.nodes']


@pytest.mark.slow
def test_loading_the_folder_registers_srconvnet_with_spandrel():
    """In a fresh interpreter, as in a fresh ComfyUI: spandrel knows no SRConvNet until the folder is loaded (twice
    is harmless), and then its ModelLoader reads SRConvNet state dicts."""
    code = textwrap.dedent(f'''
        import sys
        sys.path[:0] = {[str(Path(__file__).parent), str(REPO_ROOT)]!r}
        import spandrel
        from comfyui_helpers import descriptor, load_node_folder
        before = 'SRConvNet' in spandrel.MAIN_REGISTRY
        load_node_folder('custom_nodes_x_one'), load_node_folder('custom_nodes_x_two')
        registered = sum(a.architecture.id == 'SRConvNet' for a in spandrel.MAIN_REGISTRY)
        print(before, descriptor().architecture.id, registered)
    ''')
    done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ['False', 'SRConvNet', '1']


#: import a custom node folder (argv[1]) as ComfyUI does, and print the ImportError it raises
LOAD_AND_SHOW_THE_ERROR = textwrap.dedent('''
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location('custom_nodes_x', sys.argv[1] + '/__init__.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as e:
        print(e)
''')


@pytest.mark.parametrize('how', ['linked', 'copied'])
def test_without_the_core_the_hint_fits_a_linked_and_a_copied_folder(how, tmp_path):
    """ComfyUI's Python without the srconvnet package (an interpreter without site-packages: -I -S) loading the
    folder linked into custom_nodes/ (the repository is above its real location: the hint installs it by its absolute
    path, which works from any folder) or copied there (no repository: the hint says so)."""
    custom_nodes = tmp_path / 'ComfyUI' / 'custom_nodes'
    custom_nodes.mkdir(parents=True)
    node = custom_nodes / 'comfyui_srconvnet'
    if how == 'linked':
        node.symlink_to(NODE_FOLDER, target_is_directory=True)
    else:
        shutil.copytree(NODE_FOLDER, node, ignore=shutil.ignore_patterns('__pycache__'))
    done = subprocess.run([sys.executable, '-I', '-S', '-c', LOAD_AND_SHOW_THE_ERROR, str(node)], capture_output=True,
                          text=True, cwd=custom_nodes, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    message = done.stdout.strip()
    assert message.startswith("the SRConvNet node needs the srconvnet package (No module named 'srconvnet'); "
                              "install it with ComfyUI's Python, then restart ComfyUI: ")
    if how == 'linked':
        assert message.endswith(f': "{sys.executable}" -m pip install "{REPO_ROOT}[spandrel]"')
        assert (REPO_ROOT / 'pyproject.toml').read_text().count('name = "srconvnet-plugin"') == 1
    else:
        assert message.endswith(f': {node.resolve()} is a copy with no srconvnet-plugin repository above it, so '
                                f'install the core from your checkout: "{sys.executable}" -m pip install '
                                '"/path/to/srconvnet-plugin[spandrel]"')
    assert 'requirements.txt' not in message and 'in this folder' not in message


def test_node_declaration(node_module):
    node = node_module.NODE_CLASS_MAPPINGS['SRConvNetUpscale']
    assert node_module.NODE_DISPLAY_NAME_MAPPINGS == {'SRConvNetUpscale': 'SRConvNet Upscale'}
    inputs = node.INPUT_TYPES()
    assert inputs['required'] == {'upscale_model': ('UPSCALE_MODEL', ), 'image': ('IMAGE', )}
    optional = {name: (spec[0], spec[1]['default']) for name, spec in inputs['optional'].items()}
    assert optional == {'tile_size': ('INT', 0), 'tile_overlap': ('INT', 32),
                        'alpha_upsampler': (['model', 'bilinear'], 'model')}
    assert node.RETURN_TYPES == ('IMAGE', ) and node.CATEGORY == 'image/upscaling'
    assert callable(getattr(node(), node.FUNCTION))


@pytest.mark.parametrize('upscale', [2, 3, 4])
def test_whole_image_by_default_equals_the_model(nodes, upscale):
    model = descriptor(upscale, seed=upscale)
    image = comfy_image(2, 13, 17, 3, seed=upscale)
    (out, ) = nodes.SRConvNetUpscale().upscale(model, image)
    assert out.shape == (2, 13 * upscale, 17 * upscale, 3) and out.dtype == torch.float32
    with torch.inference_mode():
        for one, result in zip(image, out):
            assert torch.equal(result, model(as_lq(one))[0].movedim(0, -1))  # spandrel's own call: exact


@pytest.mark.slow
def test_tiles_are_the_core_tiler_with_one_progress_step_per_tile(nodes):
    model = descriptor(4, seed=1)
    image = comfy_image(2, 21, 30, 3, seed=1)
    steps = []
    out = nodes.upscale_images(model.model, image, 4, tile_size=8, tile_overlap=4, on_tile=lambda: steps.append(1))
    tiles = len(tile_boxes(21, 30, 8, 4))
    assert tiles == 12 and len(steps) == 2 * tiles == nodes.steps(image, 8, 4)
    for one, result in zip(image, out):
        core = upscale_tensor(model.model, as_lq(one), 4, tile=8, tile_pad=4)
        assert torch.equal(result, core[0].movedim(0, -1))
    whole = nodes.upscale_images(model.model, image, 4)
    assert not torch.equal(out, whole)  # tiles see less of the image: not exact (docs/comfyui.md has the numbers)
    assert nodes.steps(image, 0, 32) == 2


@pytest.mark.parametrize('alpha_upsampler', ['model', 'bilinear'])
def test_rgba_is_upscaled_as_srconvnet_infer_does(nodes, alpha_upsampler):
    model = descriptor(2, seed=2)
    rgba = comfy_image(1, 11, 14, 4, seed=2)
    (out, ) = nodes.SRConvNetUpscale().upscale(model, rgba, alpha_upsampler=alpha_upsampler)
    assert out.shape == (1, 22, 28, 4)
    (rgb_only, ) = nodes.SRConvNetUpscale().upscale(model, rgba[..., :3])
    assert torch.equal(out[..., :3], rgb_only)  # the colour channels never see the alpha
    # srconvnet-infer on the same pixels as an 8-bit BGRA file's array
    bgra = (rgba[0].numpy() * 255).round().astype(np.uint8)[:, :, [2, 1, 0, 3]]
    expected = upscale_image(model.model, bgra, 255, 2, 'cpu', alpha_upsampler=alpha_upsampler, tile=0)
    ours = np.clip(np.round(out[0].numpy() * 255), 0, 255).astype(np.uint8)[:, :, [2, 1, 0, 3]]
    assert np.abs(ours.astype(int) - expected.astype(int)).max() <= 1


def test_other_architectures_and_bad_inputs_are_refused_with_one_clear_line(nodes):
    compact = ModelLoader().load_from_state_dict(Compact(num_feat=8, num_conv=1, upscale=2).state_dict())
    image = comfy_image(1, 8, 8, 3)
    with pytest.raises(ValueError, match=r'^SRConvNet Upscale: the upscale model is RealESRGAN Compact, not SRConvNet'):
        nodes.SRConvNetUpscale().upscale(compact, image)
    with pytest.raises(ValueError, match='the upscale model is str, not SRConvNet'):
        nodes.SRConvNetUpscale().upscale('model.pth', image)
    model = descriptor()
    with pytest.raises(ValueError, match='tile_size and tile_overlap must be >= 0, got -8 and 32'):
        nodes.SRConvNetUpscale().upscale(model, image, tile_size=-8)
    with pytest.raises(ValueError, match=r'x 3 \(RGB\) or 4 \(RGBA\), got \(1, 8, 8, 2\)'):
        nodes.SRConvNetUpscale().upscale(model, comfy_image(1, 8, 8, 2))
    with pytest.raises(ValueError, match="alpha_upsampler must be one of .* got 'nearest'"):
        nodes.SRConvNetUpscale().upscale(model, image, alpha_upsampler='nearest')
