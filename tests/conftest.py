"""Shared fixtures: paths to the reference material and small real images from scikit-image."""
from pathlib import Path

import pytest

import srconvnet_plugin  # noqa: F401  (applies the basicsr compatibility shims before any test imports basicsr)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / 'shared'
GOLDEN_DIR = SHARED / 'srconvnet' / 'golden'


@pytest.fixture(scope='session')
def golden_dir():
    if not GOLDEN_DIR.is_dir():
        pytest.fail(f'reference material not found at {GOLDEN_DIR}')
    return GOLDEN_DIR
