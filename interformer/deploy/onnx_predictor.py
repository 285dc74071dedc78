"""``OnnxPredictor``: the predictor API on onnxruntime + numpy + OpenCV.

No torch: it loads ``encoder.onnx`` / ``decoder.onnx`` / ``model.json``
written by ``tools/deploy/export_onnx.py`` and applies the reference-label
rules of :mod:`interformer.interaction.reference_label` (numpy). A client
that receives features from a store (:mod:`.feature_store`) never needs the
encoder: it is loaded at the first :meth:`OnnxPredictor.set_image` without
``features``.

Coordinates are (y, x) = (row, column) in pixels of the original image; the
canvas is the image padded at the bottom/right to a multiple of 32.
"""
import os.path as osp
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from interformer.interaction.click_session import (
    ClickSession,
    Prediction,
)

from .feature_store import ImageFeatures, check_features, image_digest
from .model_info import load_model_info

__all__ = ['OnnxPredictor', 'OnnxPrediction']


#: The answer type (the same as ``InterFormerPredictor``'s).
OnnxPrediction = Prediction


def _session(path: str, num_threads: Optional[int]):
    import onnxruntime as ort
    options = ort.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


class OnnxPredictor(ClickSession):
    """Interactive segmentation with the exported encoder/decoder pair.

    Args:
        model_dir: folder with ``encoder.onnx``, ``decoder.onnx`` and
            ``model.json``.
        num_threads: onnxruntime intra-op threads (None: its default).
    """

    def __init__(self, model_dir: str,
                 num_threads: Optional[int] = None) -> None:
        self.model_dir = model_dir
        self.info = load_model_info(model_dir)
        super().__init__(int(self.info['input']['size_divisor']))
        self.num_threads = num_threads
        self.weights_sha256 = self.info['weights_sha256']
        self._mean = np.asarray(self.info['input']['mean'], np.float32)
        self._std = np.asarray(self.info['input']['std'], np.float32)
        self._decoder = _session(
            osp.join(model_dir, 'decoder.onnx'), num_threads)
        self._decoder_inputs = [i.name for i in self._decoder.get_inputs()]
        self._feature_dtype = np.float16 if self.info['fp16'] \
            else np.float32
        self._encoder = None
        self._feed: Optional[Dict[str, np.ndarray]] = None
        self._features: Optional[ImageFeatures] = None

    # ------------------------------------------------------------------ image
    @property
    def features(self) -> ImageFeatures:
        """The current image's encoder outputs (what a store keeps)."""
        self._require_image()
        return self._features

    def encode(self, image: np.ndarray) -> ImageFeatures:
        """Run ``encoder.onnx`` on an (H, W, 3) uint8 RGB image."""
        canvas = self._canvas_for(image)
        if self._encoder is None:
            self._encoder = _session(
                osp.join(self.model_dir, 'encoder.onnx'), self.num_threads)
        height, width = image.shape[:2]
        x = (image.astype(np.float32) - self._mean) / self._std
        padded = np.zeros((1, 3) + canvas, np.float32)
        padded[0, :, :height, :width] = x.transpose(2, 0, 1)
        names = [o.name for o in self._encoder.get_outputs()]
        outs = self._encoder.run(None, {'image': padded})
        return ImageFeatures(
            arrays=dict(zip(names, outs)),
            weights_sha256=self.weights_sha256,
            image_sha256=image_digest(image),
            image_shape=(height, width),
            canvas_shape=canvas)

    def set_image(self, image: np.ndarray,
                  features=None) -> None:
        """Set the image; encodes it unless ``features`` are given.

        Args:
            image: (H, W, 3) uint8 RGB array.
            features: optional :class:`ImageFeatures` (or a feature file
                path) of this image from this model (checked by sha256).
        """
        canvas = self._canvas_for(image)
        if features is None:
            features = self.encode(image)
        else:
            features = check_features(features, self.weights_sha256, image,
                                      canvas)
        self._feed = {
            name: np.ascontiguousarray(
                features.arrays[name].astype(self._feature_dtype,
                                             copy=False))
            for name in self._decoder_inputs if name != 'ref_label'
        }
        self._features = features
        self._image_ready(image.shape[:2], canvas)

    # ---------------------------------------------------------------- decode
    def decode_logits(self, ref_label: np.ndarray) -> np.ndarray:
        """(1, 2, Hc/4, Wc/4) float32 logits for a canvas reference label
        (no state change)."""
        ref_label = self._checked_ref_label(ref_label)
        feed = dict(self._feed)
        feed['ref_label'] = ref_label[None, None]
        logits = self._decoder.run(['logits'], feed)[0]
        self._check_logits(logits)
        return logits

    def _decode_margin(self, ref_label: np.ndarray,
                       prev_mask: Optional[np.ndarray],
                       step: int) -> np.ndarray:
        """The click step's decoder (:mod:`interformer.interaction.
        click_session`): (Hc, Wc) float32 margin on the canvas."""
        logits = self.decode_logits(ref_label)[0]
        return upsample_margin(logits, self._canvas_shape)


def upsample_margin(logits: np.ndarray,
                    canvas: Tuple[int, int]) -> np.ndarray:
    """Foreground margin ``l1 - l0`` of (2, h, w) logits resized to the
    canvas, bilinear with half-pixel centres (PyTorch's
    ``align_corners=False``; the margin is linear in the logits)."""
    margin = np.ascontiguousarray(logits[1] - logits[0], np.float32)
    return cv2.resize(margin, (canvas[1], canvas[0]),
                      interpolation=cv2.INTER_LINEAR)
