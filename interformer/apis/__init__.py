"""Public inference API: build a model, segment interactively."""
from .inference import init_model, load_model_checkpoint
from .predictor import PRECISIONS, InterFormerPredictor, Prediction

__all__ = [
    'InterFormerPredictor', 'Prediction', 'PRECISIONS', 'init_model',
    'load_model_checkpoint'
]
