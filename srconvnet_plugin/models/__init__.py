"""Import every ``*_model.py`` in this folder so that its models register in basicsr's MODEL_REGISTRY."""
import importlib
from os import path as osp

from basicsr.utils import scandir

model_folder = osp.dirname(osp.abspath(__file__))
model_filenames = [osp.splitext(osp.basename(v))[0] for v in scandir(model_folder) if v.endswith('_model.py')]
_model_modules = [importlib.import_module(f'{__name__}.{file_name}') for file_name in model_filenames]
