"""Stand-in predictors for click-test tests (the predictor interface of
``interformer.apis.InterFormerPredictor`` without a model).

Importable as ``click_test_standins`` (pytest puts this folder on
``sys.path``; subprocess tests add it to ``PYTHONPATH``), so a config can
name them: ``predictor = dict(type='click_test_standins.DiskPredictor')``.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from interformer.apis import Prediction


class StandInPredictor:
    """Base: keeps the image shape, an optional padded canvas and the clicks.

    Args:
        size_divisor: pad the canvas to a multiple of this (1 = no pad).
    """

    def __init__(self, size_divisor: int = 1) -> None:
        self.size_divisor = size_divisor
        self.image_shape: Optional[Tuple[int, int]] = None
        self.canvas_shape: Optional[Tuple[int, int]] = None
        self.clicks: List[Tuple[int, int, bool]] = []
        self.num_set_image = 0
        self.num_predict = 0

    def set_image(self, image: np.ndarray) -> None:
        assert image.ndim == 3 and image.dtype == np.uint8
        h, w = image.shape[:2]
        d = self.size_divisor
        self.image_shape = (h, w)
        self.canvas_shape = (-(-h // d) * d, -(-w // d) * d)
        self.num_set_image += 1
        self.reset()

    def reset(self) -> None:
        self.clicks = []

    def add_click(self, y: int, x: int, positive: bool, *,
                  on_canvas: bool = False) -> None:
        h, w = self.canvas_shape if on_canvas else self.image_shape
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f'click ({y}, {x}) outside {h}x{w}')
        self.clicks.append((int(y), int(x), bool(positive)))

    def undo(self) -> None:
        self.clicks.pop()

    def canvas_mask(self) -> np.ndarray:
        raise NotImplementedError

    def predict(self, *, on_canvas: bool = False) -> Prediction:
        self.num_predict += 1
        mask = self.canvas_mask()
        if not on_canvas:
            mask = mask[:self.image_shape[0], :self.image_shape[1]]
        return Prediction(mask=mask.copy(), prob=mask.astype(np.float32))


class EmptyPredictor(StandInPredictor):
    """Always predicts background."""

    def canvas_mask(self) -> np.ndarray:
        return np.zeros(self.canvas_shape, bool)


class MaskSequencePredictor(StandInPredictor):
    """Predicts the i-th given mask for the i-th image it is set (the ground
    truth when given the dataset's objects in order), whatever the clicks."""

    def __init__(self, masks: Sequence[np.ndarray], **kwargs) -> None:
        super().__init__(**kwargs)
        self.masks = list(masks)

    def canvas_mask(self) -> np.ndarray:
        mask = np.asarray(self.masks[self.num_set_image - 1], bool)
        assert mask.shape == self.image_shape
        out = np.zeros(self.canvas_shape, bool)
        out[:mask.shape[0], :mask.shape[1]] = mask
        return out


class DiskPredictor(StandInPredictor):
    """Paints a disk of ``radius`` per click, in click order: foreground for
    a positive click, background for a negative one."""

    def __init__(self, radius: int = 40, **kwargs) -> None:
        super().__init__(**kwargs)
        self.radius = radius

    def canvas_mask(self) -> np.ndarray:
        h, w = self.canvas_shape
        r = self.radius
        mask = np.zeros((h, w), bool)
        for y, x, positive in self.clicks:
            y0, y1 = max(y - r, 0), min(y + r + 1, h)
            x0, x1 = max(x - r, 0), min(x + r + 1, w)
            yy, xx = np.ogrid[y0 - y:y1 - y, x0 - x:x1 - x]
            window = mask[y0:y1, x0:x1]
            window[yy**2 + xx**2 <= r**2] = positive
        return mask
