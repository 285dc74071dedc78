"""The service's model side: cached image features, batched object decoding.

:class:`ClickEngine` encodes an image once (``extract_image_feats`` and the
neck's ``image_key_values``) into the :class:`FeatureCache`, keyed by the
image's content hash. A request then names the image and gives every object
as a :class:`ObjectPrompt` (clicks ``(y, x, positive)``, optionally a start
mask and/or a box); all objects that need a decoder step are decoded in one
batched ``decode_clicks`` call (reference labels ``(1, N, Hc, Wc)``).

The click semantics are InterFormer's: every round of decoding is one
:func:`~interformer.interaction.click_step.click_step` over the objects
that still have work (click ``i`` on the reference label updated by the
prediction of click ``i - 1``, the step ``InterFormerPredictor`` and the
click test run). A start mask plays the role of that previous prediction.
A box marks everything outside it as definite background and clips the
mask to it; a box alone gets a positive click at its centre.
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

from interformer.interaction import (
    REF_DEFINITE_BG,
    Box,
    canvas_shape,
    checked_click,
    click_step,
    fg_margin,
    new_reference_label,
    pad_to_canvas,
)
from interformer.interaction.click_session import check_image

from .cache import FeatureCache, content_key
from .images import DEFAULT_MAX_PIXELS, decode_image

__all__ = ['ClickEngine', 'EncodedImage', 'ObjectPrompt', 'PromptError']

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
Click = Tuple[int, int, bool]


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
    box: Optional[Sequence[int]] = None


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
        feature_store: a :class:`~interformer.deploy.store_lookup.
            StoreLookup` of this model (``tools/serve.py --features``):
            uploaded image files found in it are not encoded; the stored
            pyramid maps are used and only the cross-attention keys/values
            are computed from them.
    """

    def __init__(self,
                 model: torch.nn.Module,
                 device: str = 'cpu',
                 precision: str = 'fp32',
                 cache_mb: float = 2048,
                 max_steps_per_image: int = 64,
                 size_divisor: int = 32,
                 feature_store=None) -> None:
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
        self.feature_store = feature_store
        self.encodes = 0
        self.store_hits = 0
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
        key = content_key(data)
        return self.cache.get_or_create(
            key, lambda: self._encode(decode_image(data, max_pixels), key,
                                      data))

    def encode_array(self, image: np.ndarray) -> Tuple[EncodedImage, bool]:
        """Encode an (H, W, 3) uint8 RGB array (keyed by its pixels)."""
        check_image(image)
        digest = hashlib.sha256(np.ascontiguousarray(image).data)
        digest.update(repr(image.shape).encode())
        key = 'px-' + digest.hexdigest()
        return self.cache.get_or_create(key,
                                        lambda: self._encode(image, key))

    def _from_store(self, stored, key: str) -> EncodedImage:
        """An image from the feature store: its 4 pyramid maps; the
        cross-attention keys/values are computed from them (cheap)."""
        feats = [
            torch.from_numpy(stored.arrays[f'feat{i}'].astype(
                np.float32)).to(self.device) for i in range(4)
        ]
        with self.model_lock, torch.inference_mode(), self._autocast():
            kv = (self.model.image_key_values(feats)
                  if self._takes_kv else None)
        self.store_hits += 1
        return EncodedImage(key, tuple(stored.image_shape),
                            tuple(stored.canvas_shape), feats, kv)

    def lookup(self, key: str) -> Optional[EncodedImage]:
        """The cached image for an id returned by an encode, or None."""
        return self.cache.get(key)

    def _encode(self, image: np.ndarray, key: str,
                data: Optional[bytes] = None) -> EncodedImage:
        height, width = image.shape[:2]
        canvas = canvas_shape(height, width, self.size_divisor)
        if data is not None and self.feature_store is not None:
            stored = self.feature_store.features(data, image, canvas)
            if stored is not None:
                return self._from_store(stored, key)
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        x = (x.permute(2, 0, 1).float() - self._mean) / self._std
        x = pad_to_canvas(x, canvas, 0.0)
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
            out = click_step(
                lambda refs, prevs, steps: self._decode(encoded, refs, prevs,
                                                        steps),
                np.stack([s['ref'] for s in todo]),
                [s['mask'] for s in todo],
                [None if s['pending_noclick'] else s['clicks'][s['next']]
                 for s in todo],
                step=[s['next'] for s in todo])
            with encoded.lock:
                for s, ref, mask in zip(todo, out.ref_label, out.foreground):
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
                clipped = np.zeros_like(mask)
                clipped[s['box'].slices] = mask[s['box'].slices]
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
            inside = np.zeros(encoded.canvas_shape, bool)
            inside[box.slices] = True
            ref0[~inside] = REF_DEFINITE_BG
            digest.update(repr(tuple(box)).encode())
            if not clicks and mask0 is None:
                clicks = [((box.y0 + box.y1 - 1) // 2,
                           (box.x0 + box.x1 - 1) // 2, True)]
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

    def _decode(self, encoded: EncodedImage, refs: np.ndarray,
                prevs: List[Optional[np.ndarray]],
                steps: List[int]) -> torch.Tensor:
        """The click step's decoder for N objects: (N, Hc, Wc) reference
        labels -> (N, Hc, Wc) float32 CPU foreground margins, in one
        ``decode_clicks`` call (a zoom-in model: one call per object, with
        its previous mask and click index)."""
        if self._per_object:
            return torch.cat([
                self._run(encoded, refs[i:i + 1],
                          prev_mask=None if prev is None else
                          torch.from_numpy(prev)[None, None].to(self.device),
                          step=step)
                for i, (prev, step) in enumerate(zip(prevs, steps))
            ])
        return self._run(encoded, refs)

    def _run(self, encoded: EncodedImage, refs: np.ndarray,
             **extra) -> torch.Tensor:
        ref = torch.from_numpy(refs)[None].to(self.device)
        if self._takes_kv:
            extra['key_values'] = encoded.key_values
        with self.model_lock, torch.inference_mode(), self._autocast():
            logits = self.model.decode_clicks(encoded.feats, ref, **extra)
            margin = fg_margin(self.model.upsample_logits(
                logits.float(), encoded.canvas_shape)).cpu()
        self.decode_calls += 1
        return margin

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.precision == 'bf16')

    def stats(self) -> Dict[str, float]:
        return dict(encodes=self.encodes, store_hits=self.store_hits,
                    decode_calls=self.decode_calls,
                    encode_seconds=self.encode_seconds, **self.cache.stats())


def _check_click(click, height: int, width: int, what: str) -> Click:
    """A prompt's click, checked as the predictors check theirs."""
    try:
        y, x, positive = click
    except (TypeError, ValueError):
        raise PromptError(f'{what} must be [y, x, positive]') from None
    try:
        return checked_click(y, x, positive, (height, width))
    except TypeError as err:
        raise PromptError(f'{what} must be [int y, int x, bool positive]: '
                          f'{err}') from None
    except ValueError as err:
        raise PromptError(f'{what}: {err}') from None


def _check_box(box, height: int, width: int, what: str) -> Box:
    """A prompt's box ``[y0, x0, y1, x1]`` (ends exclusive), clipped to
    the image; an empty one is an error."""
    try:
        y0, x0, y1, x1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise PromptError(f'{what}: box must be [y0, x0, y1, x1]') from None
    clipped = Box(max(y0, 0), max(x0, 0), min(y1, height), min(x1, width))
    if clipped.y1 <= clipped.y0 or clipped.x1 <= clipped.x0:
        raise PromptError(f'{what}: box {list(box)} is empty or outside the '
                          f'{height}x{width} image')
    return clipped
