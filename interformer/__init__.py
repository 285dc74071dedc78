"""InterFormer: real-time interactive image segmentation on mmseg 1.x.

Importing the package applies the stack fixes (:mod:`interformer.compat`)
first, then registers every model, dataset, transform and metric in mmseg's
registries. Configs load it through ``custom_imports``.
"""
from . import compat  # noqa: F401  (must run before anything imports mmseg)

# isort: split
from . import datasets, engine, evaluation, interaction, models  # noqa: F401
from .version import __version__

__all__ = [
    '__version__', 'datasets', 'engine', 'evaluation', 'interaction', 'models'
]
