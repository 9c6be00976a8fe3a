"""Training models of this plugin (BasicSR models, registered in ``basicsr.utils.registry.MODEL_REGISTRY``)."""
from .precision_model import PrecisionSRModel

__all__ = ['PrecisionSRModel']
