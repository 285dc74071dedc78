"""The service's model side: cached image features, batched object decoding.

:class:`ClickEngine` encodes an image once (``extract_image_feats`` and the
neck's ``image_key_values``) into the :class:`FeatureCache`, keyed by the
image's content hash. A request then names the image and gives every object
as a :class:`ObjectPrompt` (clicks ``(y, x, positive)``, optionally a start
mask and/or a box); all objects that need a decoder step are decoded in one
batched ``decode_clicks`` call (reference labels ``(1, N, Hc, Wc)``).

The click semantics are InterFormer's (and ``InterFormerPredictor``'s):
click ``i`` is evaluated on the reference label updated by the prediction
of click ``i - 1``. A start mask plays the role of that previous
prediction. A box marks everything outside it as definite background and
clips the mask to it; a box alone gets a positive click at its centre.
Every evaluated step is kept with the image (keyed by the click prefix), so
a stateless client that resends all clicks pays one decode per new click.
"""
import hashlib
import inspect
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from interformer.interaction import (
    REF_DEFINITE_BG,
    add_click_disk,
    new_reference_label,
    update_by_prediction,
)

from .cache import FeatureCache, content_key
from .images import DEFAULT_MAX_PIXELS, decode_image

__all__ = ['ClickEngine', 'EncodedImage', 'ObjectPrompt', 'PromptError']

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
Click = Tuple[int, int, bool]
Box = Tuple[int, int, int, int]


class PromptError(ValueError):
    """A prompt that does not fit the image (answered with HTTP 400)."""


@dataclass
class ObjectPrompt:
    """One object to segment.

    Attributes:
        clicks: ``(y, x, positive)`` in image pixels, in click order.
        mask: optional (H, W) bool start mask (the "previous prediction").
        box: optional ``(y0, x0, y1, x1)``, ends exclusive, image pixels.
    """
    clicks: Sequence[Click] = ()
    mask: Optional[np.ndarray] = None
    box: Optional[Box] = None


@dataclass
class EncodedImage:
    """An image's cached encoder outputs and its evaluated click steps."""
    key: str
    image_shape: Tuple[int, int]
    canvas_shape: Tuple[int, int]
    feats: List[torch.Tensor]
    key_values: Optional[list]
    steps: 'OrderedDict[tuple, Tuple[np.ndarray, np.ndarray]]' = field(
        default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def nbytes(self) -> int:
        total = sum(_tensor_bytes(f) for f in self.feats)
        total += _tensor_bytes(self.key_values)
        total += sum(r.nbytes + m.nbytes for r, m in self.steps.values())
        return total


def _tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(o) for o in obj)
    return 0


class ClickEngine:
    """Encode-once, decode-per-click segmentation behind the service.

    Args:
        model: a built ``ClickSegmentor`` (or anything with
            ``extract_image_feats``, ``decode_clicks`` and
            ``upsample_logits``; ``image_key_values`` is used if present).
        device: torch device string.
        precision: ``'fp32'`` or ``'bf16'`` (CPU/GPU autocast).
        cache_mb: bound of the feature cache in MiB.
        max_steps_per_image: evaluated click steps kept per image.
        size_divisor: the canvas is the image padded to a multiple of it.
    """

    def __init__(self,
                 model: torch.nn.Module,
                 device: str = 'cpu',
                 precision: str = 'fp32',
                 cache_mb: float = 2048,
                 max_steps_per_image: int = 64,
                 size_divisor: int = 32) -> None:
        if precision not in ('fp32', 'bf16'):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got "
                             f'{precision!r}')
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.precision = precision
        self.size_divisor = size_divisor
        self.max_steps_per_image = max_steps_per_image
        self.cache: FeatureCache[EncodedImage] = FeatureCache(
            int(cache_mb * 2**20), EncodedImage.nbytes)
        # one model call at a time: requests queue instead of thrashing
        self.model_lock = threading.Lock()
        pre = getattr(self.model, 'data_preprocessor', None)
        mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
        self._mean = (torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
                      if mean is None else mean).to(self.device,
                                                    torch.float32)
        self._std = (torch.tensor(IMAGENET_STD).view(3, 1, 1)
                     if std is None else std).to(self.device, torch.float32)
        params = inspect.signature(self.model.decode_clicks).parameters
        self._per_object = 'step' in params  # zoom-in: one object a call
        self._takes_kv = ('key_values' in params
                          and hasattr(self.model, 'image_key_values'))
        self.encodes = 0
        self.decode_calls = 0
        self.encode_seconds = 0.0

    # ------------------------------------------------------------ encode
    def encode_bytes(self, data: bytes,
                     max_pixels: int = DEFAULT_MAX_PIXELS
                     ) -> Tuple[EncodedImage, bool]:
        """Encode image file bytes (decoded only on a cache miss).

        Returns:
            tuple: (encoded image, cache hit).
        """
        return self.cache.get_or_create(
            content_key(data),
            lambda: self._encode(decode_image(data, max_pixels),
                                 content_key(data)))

    def encode_array(self, image: np.ndarray) -> Tuple[EncodedImage, bool]:
        """Encode an (H, W, 3) uint8 RGB array (keyed by its pixels)."""
        if image.ndim != 3 or image.shape[2] != 3 or \
                image.dtype != np.uint8:
            raise ValueError(f'image must be (H, W, 3) uint8, got '
                             f'{image.shape} {image.dtype}')
        digest = hashlib.sha256(np.ascontiguousarray(image).data)
        digest.update(repr(image.shape).encode())
        key = 'px-' + digest.hexdigest()
        return self.cache.get_or_create(key,
                                        lambda: self._encode(image, key))

    def lookup(self, key: str) -> Optional[EncodedImage]:
        """The cached image for an id returned by an encode, or None."""
        return self.cache.get(key)

    def _encode(self, image: np.ndarray, key: str) -> EncodedImage:
        height, width = image.shape[:2]
        div = self.size_divisor
        canvas = (-(-height // div) * div, -(-width // div) * div)
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        x = (x.permute(2, 0, 1).float() - self._mean) / self._std
        x = F.pad(x, (0, canvas[1] - width, 0, canvas[0] - height))
        start = time.perf_counter()
        with self.model_lock, torch.inference_mode(), self._autocast():
            feats = list(self.model.extract_image_feats(x[None]))
            kv = (self.model.image_key_values(feats)
                  if self._takes_kv else None)
        self.encode_seconds += time.perf_counter() - start
        self.encodes += 1
        return EncodedImage(key, (height, width), canvas, feats, kv)

    # ------------------------------------------------------------ decode
    def segment(self, encoded: EncodedImage,
                objects: Sequence[ObjectPrompt]) -> List[np.ndarray]:
        """Masks of several objects of one image.

        Returns:
            list[np.ndarray]: one (H, W) bool mask per object.

        Raises:
            PromptError: a click, box or mask that does not fit the image,
                or an object with neither clicks, mask nor box.
        """
        states = [self._start(encoded, i, obj)
                  for i, obj in enumerate(objects)]
        while True:
            todo = [s for s in states if s['next'] < len(s['clicks'])
                    or s['pending_noclick']]
            if not todo:
                break
            refs = []
            for s in todo:
                ref = s['ref'] if s['mask'] is None else \
                    update_by_prediction(s['ref'], s['mask'])
                if not s['pending_noclick']:
                    y, x, positive = s['clicks'][s['next']]
                    ref = ref.copy() if ref is s['ref'] else ref
                    add_click_disk(ref, y, x, positive)
                refs.append(ref)
            masks = self._decode(encoded, refs, todo)
            with encoded.lock:
                for s, ref, mask in zip(todo, refs, masks):
                    if s['pending_noclick']:
                        s['pending_noclick'] = False
                    else:
                        s['next'] += 1
                        prefix = (s['init'], tuple(s['clicks'][:s['next']]))
                        encoded.steps[prefix] = (ref, mask)
                        while len(encoded.steps) > self.max_steps_per_image:
                            encoded.steps.popitem(last=False)
                    s['ref'], s['mask'] = ref, mask
            self.cache.resize(encoded.key)
        height, width = encoded.image_shape
        out = []
        for s in states:
            mask = s['mask'][:height, :width].copy()
            if s['box'] is not None:
                y0, x0, y1, x1 = s['box']
                clipped = np.zeros_like(mask)
                clipped[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
                mask = clipped
            out.append(mask)
        return out

    def _start(self, encoded: EncodedImage, index: int,
               obj: ObjectPrompt) -> Dict:
        """Check one prompt; find the longest evaluated click prefix."""
        height, width = encoded.image_shape
        what = f'object {index}'
        clicks = [_check_click(c, height, width, f'{what} click {j}')
                  for j, c in enumerate(obj.clicks)]
        box = None if obj.box is None else _check_box(obj.box, height,
                                                      width, what)
        ref0 = new_reference_label(*encoded.canvas_shape)
        mask0 = None
        digest = hashlib.sha1()
        if obj.mask is not None:
            mask = np.asarray(obj.mask)
            if mask.shape != (height, width):
                raise PromptError(f'{what}: mask shape {mask.shape} is not '
                                  f'the image shape {(height, width)}')
            mask0 = np.zeros(encoded.canvas_shape, bool)
            mask0[:height, :width] = mask.astype(bool)
            digest.update(np.packbits(mask0).tobytes())
        if box is not None:
            y0, x0, y1, x1 = box
            inside = np.zeros(encoded.canvas_shape, bool)
            inside[y0:y1, x0:x1] = True
            ref0[~inside] = REF_DEFINITE_BG
            digest.update(repr(box).encode())
            if not clicks and mask0 is None:
                clicks = [((y0 + y1 - 1) // 2, (x0 + x1 - 1) // 2, True)]
        if not clicks and mask0 is None:
            raise PromptError(f'{what} needs at least one click, a mask or '
                              'a box')
        state = dict(clicks=clicks, box=box, init=digest.hexdigest(),
                     ref=ref0, mask=mask0, next=0,
                     pending_noclick=not clicks)
        with encoded.lock:
            for k in range(len(clicks), 0, -1):
                hit = encoded.steps.get((state['init'], tuple(clicks[:k])))
                if hit is not None:
                    encoded.steps.move_to_end((state['init'],
                                               tuple(clicks[:k])))
                    state.update(ref=hit[0], mask=hit[1], next=k)
                    break
        return state

    def _decode(self, encoded: EncodedImage, refs: List[np.ndarray],
                states: List[Dict]) -> List[np.ndarray]:
        """One decoder call for N reference labels; (Hc, Wc) bool masks."""
        if self._per_object:
            out = []
            for ref, s in zip(refs, states):
                prev = None if s['mask'] is None else torch.from_numpy(
                    s['mask'])[None, None].to(self.device)
                out += self._run(encoded, [ref], prev_mask=prev,
                                 step=s['next'])
            return out
        return self._run(encoded, refs)

    def _run(self, encoded: EncodedImage, refs: List[np.ndarray],
             **extra) -> List[np.ndarray]:
        ref = torch.from_numpy(np.stack(refs))[None].to(self.device)
        if self._takes_kv:
            extra['key_values'] = encoded.key_values
        with self.model_lock, torch.inference_mode(), self._autocast():
            logits = self.model.decode_clicks(encoded.feats, ref, **extra)
            up = self.model.upsample_logits(logits.float(),
                                            encoded.canvas_shape)
            masks = (up[:, 1] > up[:, 0]).cpu().numpy()
        self.decode_calls += 1
        return list(masks)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision == 'bf16')

    def stats(self) -> Dict[str, float]:
        return dict(encodes=self.encodes, decode_calls=self.decode_calls,
                    encode_seconds=self.encode_seconds, **self.cache.stats())


def _check_click(click, height: int, width: int, what: str) -> Click:
    try:
        y, x, positive = click
    except (TypeError, ValueError):
        raise PromptError(f'{what} must be [y, x, positive]') from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
               for v in (y, x)) or not isinstance(positive, (bool,
                                                              np.bool_)):
        raise PromptError(f'{what} must be [int y, int x, bool positive], '
                          f'got {click!r}')
    if not (0 <= y < height and 0 <= x < width):
        raise PromptError(f'{what} (y={y}, x={x}) is outside the '
                          f'{height}x{width} image')
    return int(y), int(x), bool(positive)


def _check_box(box, height: int, width: int, what: str) -> Box:
    try:
        y0, x0, y1, x1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise PromptError(f'{what}: box must be [y0, x0, y1, x1]') from None
    y0, x0 = max(y0, 0), max(x0, 0)
    y1, x1 = min(y1, height), min(x1, width)
    if y1 <= y0 or x1 <= x0:
        raise PromptError(f'{what}: box {list(box)} is empty or outside the '
                          f'{height}x{width} image')
    return y0, x0, y1, x1
