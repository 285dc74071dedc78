"""InterFormer: real-time interactive image segmentation on mmseg 1.x.

Importing the package applies the stack fixes (:mod:`interformer.compat`)
first, then registers every model, dataset, transform and metric in mmseg's
registries. Configs load it through ``custom_imports``.
"""
from .version import __version__

try:
    import torch  # noqa: F401
except ImportError:
    # A torch-free install (an onnxruntime client): only the numpy parts
    # (interformer.interaction's reference label, interformer.deploy's
    # OnnxPredictor and feature store) are importable.
    HAS_TORCH = False
else:
    HAS_TORCH = True

if HAS_TORCH:
    from . import compat  # noqa: F401  (before anything imports mmseg)

    # isort: split
    from . import (  # noqa: F401
        datasets,
        engine,
        evaluation,
        interaction,
        models,
    )

__all__ = [
    '__version__', 'datasets', 'engine', 'evaluation', 'interaction', 'models'
]
