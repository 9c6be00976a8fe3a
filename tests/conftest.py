"""Shared fixtures: the reference tensors in tests/data/golden and small real images from scikit-image."""
import importlib.util
from pathlib import Path

import pytest

import srconvnet_plugin  # noqa: F401  (applies the basicsr compatibility shims before any test imports basicsr)

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = REPO_ROOT / 'tests' / 'data' / 'golden'


def load_script(name):
    """``scripts/<name>.py`` as a module (the scripts import only the packages, never each other)."""
    spec = importlib.util.spec_from_file_location(f'scripts_{name}', REPO_ROOT / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script_main(name, argv):
    """``scripts/<name>.py``'s ``main(argv)`` in this process; torch's thread count is restored afterwards."""
    import torch
    threads = torch.get_num_threads()
    try:
        return load_script(name).main(argv)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def golden_dir():
    if not GOLDEN_DIR.is_dir():
        pytest.fail(f'reference tensors not found at {GOLDEN_DIR}')
    return GOLDEN_DIR


@pytest.fixture(scope='session')
def tiny_sr_sets(tmp_path_factory):
    """Tiny x4 paired sets from scikit-image photographs (see ``helpers.make_paired_set``): ``'train'`` has 4 photos
    (96x96 GT) as folders and LMDBs, ``'val'`` 2 other photos as folders."""
    from helpers import TEXTURED_PHOTOS, make_paired_set
    root = tmp_path_factory.mktemp('tiny_sr')
    return {
        'train': make_paired_set(root / 'train', TEXTURED_PHOTOS[:4], scale=4, gt_size=96),
        'val': make_paired_set(root / 'val', TEXTURED_PHOTOS[4:], scale=4, gt_size=96, lmdb=False),
    }


@pytest.fixture
def one_thread():
    """One torch thread (used by the comparison tests): on CI's 2 shared cores, 2 threads can be 10-100× slower."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def hr_photos(tmp_path_factory):
    """A folder of four 128x128 HR photographs (``helpers.make_hr_folder``) for real-world training."""
    from helpers import make_hr_folder
    return make_hr_folder(tmp_path_factory.mktemp('hr_photos') / 'hr')


@pytest.fixture(scope='session')
def vgg19_weights(tmp_path_factory):
    """A VGG19 weight file with random weights (``helpers.write_random_vgg19``, 548 MB), made once per session;
    ``helpers.place_vgg19`` links it where BasicSR's perceptual loss reads it."""
    from helpers import write_random_vgg19
    return write_random_vgg19(tmp_path_factory.mktemp('vgg19') / 'vgg19-dcbb9e9d.pth')
