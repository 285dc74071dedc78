"""Deploy InterFormer as encoder/decoder halves (issue 15).

* :mod:`.export` (torch): ``encoder.onnx`` + ``decoder.onnx`` +
  ``model.json`` from a ``ClickSegmentor`` (:func:`export_onnx`);
* :class:`OnnxPredictor` (onnxruntime + numpy + OpenCV, no torch);
* :mod:`.feature_store`: per-image encoder outputs on disk, checked against
  the model's weights sha256; :mod:`.encode` fills a store (torch);
  :mod:`.store_lookup` finds an image's entry by its file's sha256;
* decoding in the browser: :mod:`.client_routes` (the page, onnxruntime-web,
  ``POST /api/encode`` in the :mod:`.wire` format) on the demo's app or on
  the torch-free app of :mod:`.client_app` (``tools/deploy/serve_client.py``).

This package imports without torch; the torch parts load on use.
"""
from .feature_store import (
    ImageFeatures,
    check_features,
    image_digest,
    load_features,
    save_features,
)
from .onnx_predictor import OnnxPrediction, OnnxPredictor

__all__ = [
    'ImageFeatures', 'OnnxPrediction', 'OnnxPredictor', 'check_features',
    'image_digest', 'load_features', 'save_features'
]
