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
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from interformer.interaction.reference_label import (
    NUM_REF_STATES,
    add_click_disk,
    checked_click,
    new_reference_label,
    update_by_prediction,
)

from .feature_store import ImageFeatures, check_features, image_digest
from .model_info import load_model_info

__all__ = ['OnnxPredictor', 'OnnxPrediction']


@dataclass
class OnnxPrediction:
    """mask (H, W) bool (foreground logit > background logit) and prob
    (H, W) float32 (softmax foreground probability)."""
    mask: np.ndarray
    prob: np.ndarray


@dataclass
class _Step:
    ref_label: np.ndarray  # (Hc, Wc) uint8 fed to the decoder
    mask: np.ndarray  # (Hc, Wc) bool
    prob: np.ndarray  # (Hc, Wc) float32


def _session(path: str, num_threads: Optional[int]):
    import onnxruntime as ort
    options = ort.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


class OnnxPredictor:
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
        self.num_threads = num_threads
        self.weights_sha256 = self.info['weights_sha256']
        self.size_divisor = int(self.info['input']['size_divisor'])
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
        self._image_shape: Optional[Tuple[int, int]] = None
        self._canvas_shape: Optional[Tuple[int, int]] = None
        self._clicks: List[Optional[Tuple[int, int, bool]]] = []
        self._steps: List[_Step] = []

    # ------------------------------------------------------------------ image
    @property
    def image_shape(self) -> Tuple[int, int]:
        """(H, W) of the current image."""
        self._require_image()
        return self._image_shape

    @property
    def canvas_shape(self) -> Tuple[int, int]:
        """(Hc, Wc): the image padded to a multiple of ``size_divisor``."""
        self._require_image()
        return self._canvas_shape

    @property
    def clicks(self) -> List[Tuple[int, int, bool]]:
        """The current object's clicks as (y, x, positive) tuples."""
        return [c for c in self._clicks if c is not None]

    @property
    def features(self) -> ImageFeatures:
        """The current image's encoder outputs (what a store keeps)."""
        self._require_image()
        return self._features

    def encode(self, image: np.ndarray) -> ImageFeatures:
        """Run ``encoder.onnx`` on an (H, W, 3) uint8 RGB image."""
        _check_image(image)
        if self._encoder is None:
            self._encoder = _session(
                osp.join(self.model_dir, 'encoder.onnx'), self.num_threads)
        canvas = self._canvas_for(image)
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
        _check_image(image)
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
        self._image_shape = tuple(image.shape[:2])
        self._canvas_shape = canvas
        self.reset()

    # ----------------------------------------------------------------- clicks
    def reset(self) -> None:
        """Start a new object on the same image (features are kept)."""
        self._clicks = []
        self._steps = []

    def add_click(self, y: int, x: int, positive: bool, *,
                  on_canvas: bool = False) -> None:
        """Add a click at (y, x) (pixels; see ``InterFormerPredictor``)."""
        self._require_image()
        shape = self._canvas_shape if on_canvas else self._image_shape
        self._clicks.append(checked_click(
            y, x, positive, shape, 'canvas' if on_canvas else 'image'))

    def step_without_click(self) -> None:
        """Decode once more on the label updated by the last prediction."""
        self._require_image()
        if not self._clicks:
            raise RuntimeError('step_without_click needs at least one click')
        self._clicks.append(None)

    def undo(self) -> bool:
        """Remove the last click. Returns ``False`` if there was none."""
        if not self._clicks:
            return False
        self._clicks.pop()
        del self._steps[len(self._clicks):]
        return True

    # ---------------------------------------------------------------- predict
    def predict(self, *, on_canvas: bool = False) -> OnnxPrediction:
        """Segment the object from the clicks so far (each click decoded on
        the label updated by the previous prediction)."""
        self._require_image()
        for index in range(len(self._steps), len(self._clicks)):
            self._steps.append(self._decode_step(index))
        if self._steps:
            mask, prob = self._steps[-1].mask, self._steps[-1].prob
        else:
            mask = np.zeros(self._canvas_shape, bool)
            prob = np.zeros(self._canvas_shape, np.float32)
        if not on_canvas:
            height, width = self._image_shape
            mask, prob = mask[:height, :width], prob[:height, :width]
        return OnnxPrediction(mask=mask.copy(), prob=prob.copy())

    def reference_label(self) -> np.ndarray:
        """(Hc, Wc) uint8 reference label fed at the latest click."""
        self.predict()
        if not self._steps:
            return new_reference_label(*self.canvas_shape)
        return self._steps[-1].ref_label.copy()

    def decode_logits(self, ref_label: np.ndarray) -> np.ndarray:
        """(1, 2, Hc/4, Wc/4) float32 logits for a canvas reference label
        (no state change)."""
        self._require_image()
        ref_label = np.asarray(ref_label)
        if ref_label.shape != tuple(self._canvas_shape):
            raise ValueError(f'ref_label must have the canvas shape '
                             f'{self._canvas_shape}, got {ref_label.shape}')
        if ref_label.size and (ref_label.min() < 0
                               or ref_label.max() >= NUM_REF_STATES):
            raise ValueError(f'ref_label codes must be in [0, '
                             f'{NUM_REF_STATES}), got values in '
                             f'[{ref_label.min()}, {ref_label.max()}]')
        feed = dict(self._feed)
        feed['ref_label'] = ref_label.astype(np.uint8)[None, None]
        return self._decoder.run(['logits'], feed)[0]

    def _decode_step(self, index: int) -> _Step:
        if index == 0:
            ref = new_reference_label(*self._canvas_shape)
        else:
            prev = self._steps[index - 1]
            ref = update_by_prediction(prev.ref_label, prev.mask)
        if self._clicks[index] is not None:
            y, x, positive = self._clicks[index]
            add_click_disk(ref, y, x, positive)
        logits = self.decode_logits(ref)[0]
        margin = upsample_margin(logits, self._canvas_shape)
        mask = margin > 0
        prob = (1.0 / (1.0 + np.exp(-margin))).astype(np.float32)
        return _Step(ref_label=ref, mask=mask, prob=prob)

    # ---------------------------------------------------------------- helpers
    def _canvas_for(self, image: np.ndarray) -> Tuple[int, int]:
        div = self.size_divisor
        height, width = image.shape[:2]
        return (-(-height // div) * div, -(-width // div) * div)

    def _require_image(self) -> None:
        if self._feed is None:
            raise RuntimeError('no image set: call set_image(image) before '
                               'adding clicks or predicting')


def upsample_margin(logits: np.ndarray,
                    canvas: Tuple[int, int]) -> np.ndarray:
    """Foreground margin ``l1 - l0`` of (2, h, w) logits resized to the
    canvas, bilinear with half-pixel centres (PyTorch's
    ``align_corners=False``; the margin is linear in the logits)."""
    margin = np.ascontiguousarray(logits[1] - logits[0], np.float32)
    return cv2.resize(margin, (canvas[1], canvas[0]),
                      interpolation=cv2.INTER_LINEAR)


def _check_image(image: np.ndarray) -> None:
    """The same checks (and messages) as ``InterFormerPredictor``."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f'image must be a numpy array, '
                        f'got {type(image).__name__}')
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must have shape (H, W, 3), '
                         f'got {image.shape}')
    if image.dtype != np.uint8:
        raise ValueError(f'image must be uint8 RGB, got {image.dtype}')
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f'image is empty: {image.shape}')
