"""The state of one browser session: image, clicks, objects, label map.

A :class:`DemoSession` wraps one predictor (anything with the
``InterFormerPredictor`` API). The image is encoded once in
:meth:`DemoSession.set_image`; each click, undo or reset only runs the
predictor's light decoder, and the time it takes is measured here with
``time.perf_counter`` so the page shows the real per-click cost.

Objects: the object being edited is object ``len(finished) + 1``.
:meth:`DemoSession.next_object` stores its mask and starts a new one. In the
label map (0 = background, k = object k) later objects are painted over
earlier ones where they overlap.
"""
import threading
import time
from typing import List, Optional, Protocol, Tuple

import numpy as np

from .render import render_overlay

__all__ = ['DemoSession', 'PredictorLike', 'MAX_LABEL_UINT8']

#: Label maps with more objects than this are stored as uint16.
MAX_LABEL_UINT8 = 255
_MS = 1000.0


class PredictorLike(Protocol):
    """The part of ``InterFormerPredictor`` the demo uses."""

    image_shape: Tuple[int, int]

    def set_image(self, image: np.ndarray, features=None) -> None:
        ...

    def reset(self) -> None:
        ...

    def add_click(self, y: int, x: int, positive: bool) -> None:
        ...

    def undo(self) -> object:
        ...

    def predict(self):  # -> Prediction with .mask (H, W) bool
        ...


class DemoSession:
    """Interactive segmentation state of one user.

    Args:
        predictor: a predictor with the ``InterFormerPredictor`` API. The
            session owns its state (cached features, clicks).

    Attributes:
        lock: held by the server around every call, so one session is never
            changed by two requests at once.
        name: a display/download name for the image (set by the server).
    """

    def __init__(self, predictor: PredictorLike) -> None:
        self.predictor = predictor
        self.lock = threading.Lock()
        self.name = 'image'
        self._image: Optional[np.ndarray] = None
        self._clicks: List[Tuple[int, int, bool]] = []
        self._finished: List[np.ndarray] = []
        self._current: Optional[np.ndarray] = None
        self.last_latency_ms: Optional[float] = None
        #: 'encoder', or 'store' when the image's features were stored.
        self.features_source: Optional[str] = None

    # ------------------------------------------------------------- image
    @property
    def has_image(self) -> bool:
        return self._image is not None

    @property
    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB image being segmented."""
        self._require_image()
        return self._image

    @property
    def shape(self) -> Tuple[int, int]:
        """(H, W) of the image."""
        return self.image.shape[:2]

    def set_image(self, image: np.ndarray, name: str = 'image',
                  features=None) -> float:
        """Encode a new image (once) and forget all objects and clicks.

        Args:
            image: (H, W, 3) uint8 RGB.
            name: display/download name.
            features: the image's stored encoder outputs (a feature-store
                entry, see ``tools/encode_images.py``); the encoder then
                does not run.

        Returns:
            float: encoder (or feature loading) time in milliseconds.
        """
        start = time.perf_counter()
        if features is None:
            self.predictor.set_image(image)
        else:
            self.predictor.set_image(image, features=features)
        encode_ms = (time.perf_counter() - start) * _MS
        self.features_source = 'encoder' if features is None else 'store'
        self._image = image
        self.name = name
        self._finished = []
        self._clicks = []
        self._current = np.zeros(image.shape[:2], bool)
        self.last_latency_ms = None
        return encode_ms

    # ------------------------------------------------------------ clicks
    @property
    def clicks(self) -> List[Tuple[int, int, bool]]:
        """The current object's clicks as (y, x, positive)."""
        return list(self._clicks)

    @property
    def object_index(self) -> int:
        """1-based index of the object being edited."""
        return len(self._finished) + 1

    @property
    def num_finished(self) -> int:
        return len(self._finished)

    def click(self, y: int, x: int, positive: bool) -> float:
        """Add a click at (y, x) and segment; returns the decoder ms.

        Raises:
            ValueError: the click is outside the image (nothing changes).
        """
        self._require_image()
        height, width = self.shape
        if not (0 <= y < height and 0 <= x < width):
            raise ValueError(f'click (y={y}, x={x}) is outside the '
                             f'{height}x{width} image')
        self.predictor.add_click(y, x, positive)
        self._clicks.append((y, x, bool(positive)))
        return self._predict()

    def undo(self) -> bool:
        """Remove the current object's last click.

        Returns:
            bool: ``False`` if the current object had no click.
        """
        self._require_image()
        if not self._clicks:
            return False
        self.predictor.undo()
        self._clicks.pop()
        self._predict()
        return True

    def reset(self) -> None:
        """Clear the current object's clicks (finished objects stay)."""
        self._require_image()
        self.predictor.reset()
        self._clicks = []
        self._current = np.zeros(self.shape, bool)
        self.last_latency_ms = None

    def next_object(self) -> bool:
        """Finish the current object and start a new one.

        Returns:
            bool: ``False`` (and nothing changes) if the current object has
            no click or an empty mask.
        """
        self._require_image()
        if not self._clicks or not self._current.any():
            return False
        self._finished.append(self._current.copy())
        self.reset()
        return True

    # ------------------------------------------------------------ output
    def current_mask(self) -> np.ndarray:
        """(H, W) bool mask of the object being edited."""
        self._require_image()
        return self._current.copy()

    def finished_masks(self) -> List[np.ndarray]:
        """(H, W) bool masks of the finished objects, in order."""
        return [m.copy() for m in self._finished]

    def label_map(self) -> np.ndarray:
        """All objects (finished + current if non-empty) as one label map.

        Returns:
            np.ndarray: (H, W) label map, 0 = background, k = object k;
            uint8, or uint16 with more than 255 objects.
        """
        self._require_image()
        masks = list(self._finished)
        if self._current.any():
            masks.append(self._current)
        dtype = np.uint8 if len(masks) <= MAX_LABEL_UINT8 else np.uint16
        labels = np.zeros(self.shape, dtype)
        for index, mask in enumerate(masks, start=1):
            labels[mask] = index
        return labels

    def overlay(self) -> np.ndarray:
        """(H, W, 4) uint8 RGBA overlay of all objects (see render.py)."""
        self._require_image()
        return render_overlay(self._finished, self._current)

    # ---------------------------------------------------------- internals
    def _predict(self) -> float:
        start = time.perf_counter()
        prediction = self.predictor.predict()
        latency = (time.perf_counter() - start) * _MS
        mask = np.asarray(prediction.mask, dtype=bool)
        if mask.shape != self.shape:
            raise RuntimeError(f'predictor returned a mask of shape '
                               f'{mask.shape} for a {self.shape} image')
        self._current = mask
        self.last_latency_ms = latency
        return latency

    def _require_image(self) -> None:
        if self._image is None:
            raise RuntimeError('no image loaded: upload an image or pick '
                               'an example first')
