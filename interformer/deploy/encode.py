"""Fill a feature store: encode images ahead of time (issue 15, part 3).

Layout of a store folder::

    STORE/manifest.json             one entry per image path (below)
    STORE/features/<sha256>.npz     encoder outputs of one image
                                    (:mod:`.feature_store`), named by the
                                    sha256 of the image file's bytes

A manifest entry: ``path``, ``sha256`` (file bytes), ``size`` [H, W],
``file`` (relative to the store), ``bytes``, ``status`` (``ok`` or
``failed``) and ``reason`` for a failure. The manifest also holds the model
identity (``weights_sha256``) and the feature dtype.

A rerun skips every image whose feature file exists and was written by the
same model from the same bytes. Feature files and the manifest are written
atomically (temporary file + rename), so a killed run leaves whole files
only; its finished images are skipped by the next run. An unreadable image
is recorded as failed with its reason and the run goes on.

With several processes (torchrun, ``launcher='pytorch'``) the images are
dealt round-robin over the ranks; rank 0 gathers the entries and writes the
manifest.
"""
import contextlib
import hashlib
import json
import os
import os.path as osp
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .export import weights_sha256
from .feature_store import (
    ImageFeatures,
    image_digest,
    read_meta,
    save_features,
)
from .model_info import IMAGENET_MEAN, IMAGENET_STD, SIZE_DIVISOR
from .store_lookup import MANIFEST, MANIFEST_FORMAT

__all__ = [
    'TorchEncoder', 'EncodeSummary', 'encode_to_store', 'expand_images',
    'MANIFEST'
]

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff',
                    '.webp')
STORE_DTYPES = ('float16', 'float32')


class TorchEncoder:
    """The model's own backbone + cross-attention keys/values as numpy.

    Args:
        model: a ``ClickSegmentor`` (eval mode, on its device).
        store_dtype: ``'float16'`` (default) or ``'float32'``.
        fp16: run under autocast (float16 on CUDA, bfloat16 on CPU).
    """

    def __init__(self, model: torch.nn.Module, store_dtype: str = 'float16',
                 fp16: bool = False) -> None:
        if store_dtype not in STORE_DTYPES:
            raise ValueError(f'store_dtype must be one of {STORE_DTYPES}, '
                             f'got {store_dtype!r}')
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.dtype = np.dtype(store_dtype)
        self.fp16 = fp16
        self.weights_sha256 = weights_sha256(model)
        pre = getattr(model, 'data_preprocessor', None)
        mean = getattr(pre, 'mean', None)
        std = getattr(pre, 'std', None)
        self.mean = (torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
                     if mean is None else mean).to(self.device).float()
        self.std = (torch.tensor(IMAGENET_STD).view(3, 1, 1)
                    if std is None else std).to(self.device).float()

    @staticmethod
    def canvas(shape: Sequence[int]) -> tuple:
        """(Hc, Wc) of an (H, W, ...) image padded to a multiple of 32."""
        return tuple(-(-int(s) // SIZE_DIVISOR) * SIZE_DIVISOR
                     for s in shape[:2])

    def encode(self, images: List[np.ndarray],
               extras: Optional[List[dict]] = None) -> List[ImageFeatures]:
        """Encode (H, W, 3) uint8 RGB images of one canvas size at once."""
        canvas = self.canvas(images[0].shape)
        batch = []
        for image in images:
            if self.canvas(image.shape) != canvas:
                raise ValueError('encode: images of one batch must share '
                                 'the canvas size')
            x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
            x = (x.permute(2, 0, 1).float() - self.mean) / self.std
            height, width = image.shape[:2]
            batch.append(F.pad(x, (0, canvas[1] - width,
                                   0, canvas[0] - height)))
        autocast = contextlib.nullcontext()
        if self.fp16:
            kind = self.device.type
            autocast = torch.autocast(
                kind, dtype=torch.float16 if kind == 'cuda'
                else torch.bfloat16)
        with torch.inference_mode(), autocast:
            feats = self.model.extract_image_feats(torch.stack(batch))
            key_values = self.model.image_key_values(feats)
        tensors = dict(
            (f'feat{i}', f) for i, f in enumerate(feats))
        for i, (key, value) in enumerate(key_values):
            tensors[f'key{i}'], tensors[f'value{i}'] = key, value
        arrays = {n: t.float().cpu().numpy().astype(self.dtype)
                  for n, t in tensors.items()}
        return [
            ImageFeatures(
                arrays={n: a[j:j + 1] for n, a in arrays.items()},
                weights_sha256=self.weights_sha256,
                image_sha256=image_digest(image),
                image_shape=tuple(image.shape[:2]),
                canvas_shape=canvas,
                extra=(extras or [{}] * len(images))[j])
            for j, image in enumerate(images)
        ]


@dataclass
class EncodeSummary:
    """What a run did (this process's share, or all after gathering)."""
    encoded: int = 0
    skipped: int = 0
    failed: Dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0  # encoder wall time (reading and writing excluded)
    bytes: int = 0  # feature bytes written
    entries: List[dict] = field(default_factory=list)

    def merge(self, other: 'EncodeSummary') -> None:
        self.encoded += other.encoded
        self.skipped += other.skipped
        self.failed.update(other.failed)
        self.seconds = max(self.seconds, other.seconds)
        self.bytes += other.bytes
        self.entries += other.entries

    def text(self) -> str:
        lines = [f'encoded {self.encoded}, skipped {self.skipped} (done '
                 f'before), failed {len(self.failed)}']
        if self.encoded:
            lines.append(
                f'{self.encoded / max(self.seconds, 1e-9):.2f} images/s in '
                f'the encoder, {self.bytes / self.encoded / 1e6:.2f} MB per '
                f'image')
        lines += [f'FAILED {path}: {why}' for path, why in
                  sorted(self.failed.items())]
        return '\n'.join(lines)


def expand_images(inputs: Sequence[str]) -> List[str]:
    """Files as given; folders expanded to their images (sorted)."""
    paths = []
    for item in inputs:
        if osp.isdir(item):
            paths += sorted(
                osp.join(item, name) for name in os.listdir(item)
                if name.lower().endswith(IMAGE_EXTENSIONS))
        else:
            paths.append(item)
    return paths


def _read(path: str):
    """(bytes sha256, RGB image) or (None, reason)."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as err:
        return None, f'cannot read: {err.strerror or err}'
    digest = hashlib.sha256(data).hexdigest()
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return digest, f'not a decodable image ({len(data)} bytes)'
    return digest, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _write_json(path: str, obj) -> None:
    tmp = f'{path}.{os.getpid()}.tmp'
    with open(tmp, 'w') as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def encode_to_store(encoder: TorchEncoder, paths: Sequence[str], store: str,
                    batch_size: int = 1, rank: int = 0,
                    world_size: int = 1) -> EncodeSummary:
    """Encode this rank's share of ``paths`` into ``store``.

    Returns:
        EncodeSummary: of this rank (``entries`` hold its manifest rows).
    """
    if batch_size < 1:
        raise ValueError(f'batch size must be >= 1, got {batch_size}')
    os.makedirs(osp.join(store, 'features'), exist_ok=True)
    summary = EncodeSummary()
    pending: Dict[tuple, List[tuple]] = {}

    def flush(canvas) -> None:
        items = pending.pop(canvas, [])
        if not items:
            return
        start = time.perf_counter()
        feats = encoder.encode([it[2] for it in items],
                               [dict(path=it[0], content_sha256=it[1])
                                for it in items])
        summary.seconds += time.perf_counter() - start
        for (path, digest, image), feat in zip(items, feats):
            rel = osp.join('features', f'{digest}.npz')
            size = save_features(osp.join(store, rel), feat)
            summary.encoded += 1
            summary.bytes += size
            summary.entries.append(_entry(path, digest, image.shape, rel,
                                          size))

    for path in list(paths)[rank::world_size]:
        digest, image = _read(path)
        if isinstance(image, str):
            summary.failed[path] = image
            summary.entries.append(
                dict(path=path, sha256=digest, status='failed',
                     reason=image))
            continue
        rel = osp.join('features', f'{digest}.npz')
        meta = read_meta(osp.join(store, rel))
        if (meta is not None
                and meta.get('weights_sha256') == encoder.weights_sha256
                and meta.get('extra', {}).get('content_sha256') == digest):
            summary.skipped += 1
            summary.entries.append(
                _entry(path, digest, image.shape, rel,
                       osp.getsize(osp.join(store, rel))))
            continue
        canvas = encoder.canvas(image.shape)
        pending.setdefault(canvas, []).append((path, digest, image))
        if len(pending[canvas]) >= batch_size:
            flush(canvas)
    for canvas in list(pending):
        flush(canvas)
    return summary


def _entry(path, digest, shape, rel, size) -> dict:
    return dict(path=path, sha256=digest, size=[int(shape[0]),
                                                int(shape[1])],
                file=rel, bytes=int(size), status='ok')


def write_manifest(store: str, summary: EncodeSummary, weights: str,
                   store_dtype: str) -> str:
    """Merge ``summary.entries`` into ``store/manifest.json`` (by path)."""
    path = osp.join(store, MANIFEST)
    images = {}
    if osp.isfile(path):
        try:
            with open(path) as f:
                old = json.load(f)
            if old.get('weights_sha256') == weights:
                images = {e['path']: e for e in old.get('images', [])}
        except (OSError, ValueError, KeyError, AttributeError):
            images = {}
    images.update((e['path'], e) for e in summary.entries)
    _write_json(path, dict(
        format=MANIFEST_FORMAT,
        weights_sha256=weights,
        dtype=store_dtype,
        images=[images[k] for k in sorted(images)]))
    return path
