"""The clicks of one object on one image: the bookkeeping every predictor
shares.

:class:`ClickSession` keeps the clicks in order and evaluates each one once
with :func:`~interformer.interaction.click_step.click_step` (click ``i`` on
the reference label updated by the foreground of click ``i - 1``, as in
training and in the click test); :meth:`ClickSession.undo` drops the last
click and its evaluated step, so undoing costs no decode. A subclass only
encodes the image and decodes:

* ``set_image`` calls :meth:`ClickSession._canvas_for` (the input checks,
  the canvas) before encoding and :meth:`ClickSession._image_ready` after;
* ``_decode_margin(ref_label, prev_mask, step)`` returns the (Hc, Wc)
  float32 foreground margin on the canvas (numpy, or a CPU tensor).

The predictors built on it: ``interformer.apis.InterFormerPredictor``
(PyTorch) and ``interformer.deploy.OnnxPredictor`` (onnxruntime, no torch:
this module imports numpy only). Coordinates are (y, x) = (row, column) in
pixels of the original image; the canvas is the image padded at the
bottom/right to a multiple of ``size_divisor``.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from .click_step import click_step, foreground_probability
from .geometry import GRID_STRIDE, SIZE_DIVISOR, canvas_shape, grid_shape
from .reference_label import (
    NUM_REF_STATES,
    checked_click,
    new_reference_label,
)

__all__ = ['ClickSession', 'Prediction', 'check_image']


@dataclass
class Prediction:
    """The answer to the current clicks.

    Attributes:
        mask: (H, W) bool, the model's own decision (argmax of the 2 logits).
        prob: (H, W) float32 foreground probability (softmax of the logits).
    """
    mask: np.ndarray
    prob: np.ndarray


@dataclass
class _Step:
    """One evaluated click: its reference label and the canvas outputs."""
    ref_label: np.ndarray  # (Hc, Wc) uint8, fed to the decoder
    mask: np.ndarray  # (Hc, Wc) bool
    prob: np.ndarray  # (Hc, Wc) float32


def check_image(image: np.ndarray) -> None:
    """An (H, W, 3) uint8 RGB array, or one clear error saying what is
    wrong (the same for every predictor)."""
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


class ClickSession:
    """Clicks, undo and the evaluated steps of one object on one image.

    Args:
        size_divisor: the canvas is the image padded to a multiple of it.
    """

    def __init__(self, size_divisor: int = SIZE_DIVISOR) -> None:
        self.size_divisor = int(size_divisor)
        self._image_shape: Optional[Tuple[int, int]] = None
        self._canvas_shape: Optional[Tuple[int, int]] = None
        # (y, x, positive) per step; None for a step without a click
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

    def _canvas_for(self, image: np.ndarray) -> Tuple[int, int]:
        """Check an image (:func:`check_image`); its (Hc, Wc) canvas."""
        check_image(image)
        return canvas_shape(image.shape[0], image.shape[1],
                            self.size_divisor)

    def _image_ready(self, image_shape: Tuple[int, int],
                     canvas: Tuple[int, int]) -> None:
        """Called by ``set_image`` once the image is encoded: a new object
        on it."""
        self._image_shape = (int(image_shape[0]), int(image_shape[1]))
        self._canvas_shape = (int(canvas[0]), int(canvas[1]))
        self.reset()

    # ----------------------------------------------------------------- clicks
    def reset(self) -> None:
        """Start a new object on the same image (features are kept)."""
        self._clicks = []
        self._steps = []

    def add_click(self,
                  y: int,
                  x: int,
                  positive: bool,
                  *,
                  on_canvas: bool = False) -> None:
        """Add a click at (y, x).

        Args:
            y, x: pixel row and column.
            positive: ``True`` for a foreground click.
            on_canvas: accept clicks anywhere on the padded canvas (used by
                the official evaluation protocol) instead of the image only.
        """
        self._require_image()
        shape = self._canvas_shape if on_canvas else self._image_shape
        self._clicks.append(checked_click(
            y, x, positive, shape, 'canvas' if on_canvas else 'image'))

    def step_without_click(self) -> None:
        """Let the model answer once more without a new click.

        The next :meth:`predict` then decodes the reference label updated by
        the previous prediction, with no disk added. The official click test
        does this when its robot user finds nothing left to correct.
        """
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
    def predict(self, *, on_canvas: bool = False) -> Prediction:
        """Segment the object from the clicks so far.

        Clicks added since the last call are evaluated in order, each on the
        reference label updated by the previous prediction. Without clicks
        the answer is empty.

        Returns:
            Prediction: ``mask`` and ``prob`` of shape (H, W) of the image,
            or (Hc, Wc) of the canvas with ``on_canvas=True``.
        """
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
        return Prediction(mask=mask.copy(), prob=prob.copy())

    def reference_label(self) -> np.ndarray:
        """(Hc, Wc) uint8 reference label fed at the latest click."""
        self.predict()
        if not self._steps:
            return new_reference_label(*self.canvas_shape)
        return self._steps[-1].ref_label.copy()

    def _decode_step(self, index: int) -> _Step:
        """Evaluate click ``index`` given the evaluated steps before it."""
        if index == 0:
            ref, prev_mask = new_reference_label(*self._canvas_shape), None
        else:
            prev = self._steps[index - 1]
            ref, prev_mask = prev.ref_label, prev.mask
        out = click_step(self._decode_margin, ref, prev_mask,
                         self._clicks[index], step=index)
        prob = np.asarray(foreground_probability(out.margin), np.float32)
        return _Step(ref_label=out.ref_label,
                     mask=np.asarray(out.foreground, bool), prob=prob)

    def _decode_margin(self, ref_label: np.ndarray,
                       prev_mask: Optional[np.ndarray], step: int):
        """(Hc, Wc) float32 foreground margin of a canvas reference label
        (numpy, or a CPU tensor); implemented by the predictor."""
        raise NotImplementedError

    def _checked_ref_label(self, ref_label) -> np.ndarray:
        """A caller's canvas reference label as uint8, or a clear error."""
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
        return ref_label.astype(np.uint8)

    def _check_logits(self, logits) -> None:
        """The decoder answers (1, 2, Hc/4, Wc/4) logits on the stride-4
        grid of the canvas; anything else is one clear error (a head that
        does not fit the predictor), not a silently misplaced mask."""
        expected = (1, 2) + grid_shape(self._canvas_shape, GRID_STRIDE)
        if tuple(logits.shape) != expected:
            raise ValueError(f'the decoder returned logits of shape '
                             f'{tuple(logits.shape)}; expected {expected} '
                             f'(stride {GRID_STRIDE} of the '
                             f'{self._canvas_shape} canvas)')

    def _require_image(self) -> None:
        if self._canvas_shape is None:
            raise RuntimeError('no image set: call set_image(image) before '
                               'adding clicks or predicting')
