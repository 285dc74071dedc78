"""Per-image encoder outputs on disk (torch-free).

One ``.npz`` per image holds the encoder's outputs (``feat0..feat3``,
``key0/value0 .. key3/value3``, batch axis 1, float16 by default) and a
JSON ``meta`` entry: the model identity (``weights_sha256``), the image's
identity (:func:`image_digest` of the decoded RGB array), its size and the
padded canvas. Predictors accept such features only for the same model and
the same image (:func:`check_features`).

Writes are atomic: the file is written under a temporary name in the same
folder, flushed to disk and renamed, so a killed writer leaves either the
whole file or none.
"""
import hashlib
import json
import os
import os.path as osp
import tempfile
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

__all__ = [
    'ImageFeatures', 'image_digest', 'save_features', 'load_features',
    'check_features', 'FEATURE_NAMES'
]

FEATURE_NAMES = tuple([f'feat{i}' for i in range(4)] +
                      [f'{kind}{i}' for i in range(4)
                       for kind in ('key', 'value')])
META_KEY = '__meta__'


@dataclass
class ImageFeatures:
    """Encoder outputs of one image.

    Attributes:
        arrays: name -> array with a leading batch axis of 1 (see
            :data:`FEATURE_NAMES`).
        weights_sha256: identity of the model that computed them.
        image_sha256: :func:`image_digest` of the encoded image.
        image_shape: (H, W) of the image.
        canvas_shape: (Hc, Wc) padded canvas the encoder saw.
        extra: free-form metadata (e.g. the source path).
    """
    arrays: Dict[str, np.ndarray]
    weights_sha256: str
    image_sha256: str
    image_shape: Tuple[int, int]
    canvas_shape: Tuple[int, int]
    extra: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays."""
        return sum(a.nbytes for a in self.arrays.values())


def image_digest(image: np.ndarray) -> str:
    """sha256 of an (H, W, 3) uint8 image's shape and pixels."""
    digest = hashlib.sha256(repr(tuple(image.shape)).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def save_features(path: str, features: ImageFeatures) -> int:
    """Write ``features`` atomically to ``path`` (``.npz``); returns bytes.
    """
    missing = [n for n in FEATURE_NAMES if n not in features.arrays]
    if missing:
        raise ValueError(f'save_features: missing arrays {missing}')
    meta = dict(
        weights_sha256=features.weights_sha256,
        image_sha256=features.image_sha256,
        image_shape=list(features.image_shape),
        canvas_shape=list(features.canvas_shape),
        extra=features.extra)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix='.' + osp.basename(path) + '.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            np.savez(
                f, **{n: features.arrays[n] for n in FEATURE_NAMES},
                **{META_KEY: np.frombuffer(json.dumps(meta).encode(),
                                           np.uint8)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    return osp.getsize(path)


def load_features(path: str) -> ImageFeatures:
    """Read a feature file written by :func:`save_features`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a feature file (named in the message).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'feature file {path} not found')
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {n: data[n] for n in FEATURE_NAMES}
            meta = json.loads(data[META_KEY].tobytes().decode())
    except (OSError, KeyError, ValueError, EOFError) as err:
        raise ValueError(f'{path} is not an InterFormer feature file: '
                         f'{err}') from None
    return ImageFeatures(
        arrays=arrays,
        weights_sha256=meta['weights_sha256'],
        image_sha256=meta['image_sha256'],
        image_shape=tuple(meta['image_shape']),
        canvas_shape=tuple(meta['canvas_shape']),
        extra=meta.get('extra', {}))


def read_meta(path: str) -> Optional[dict]:
    """The ``meta`` entry of a feature file, or None if it is unreadable
    (used to decide whether a stored image is done)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if set(FEATURE_NAMES) - set(data.files):
                return None
            return json.loads(data[META_KEY].tobytes().decode())
    except (OSError, KeyError, ValueError, EOFError):
        return None


def check_features(features, weights_sha256: str, image: np.ndarray,
                   canvas_shape: Tuple[int, int]) -> ImageFeatures:
    """Accept ``features`` (an :class:`ImageFeatures` or a path) for this
    model and image, or raise ``ValueError`` saying why not."""
    if isinstance(features, (str, os.PathLike)):
        features = load_features(os.fspath(features))
    if not isinstance(features, ImageFeatures):
        raise TypeError(f'features must be ImageFeatures or a feature file '
                        f'path, got {type(features).__name__}')
    if features.weights_sha256 != weights_sha256:
        raise ValueError(
            f'features were computed by another model (weights sha256 '
            f'{features.weights_sha256[:12]}..., this model '
            f'{weights_sha256[:12]}...); re-encode the image with this '
            f'model')
    if features.image_sha256 != image_digest(image):
        raise ValueError(
            f'features belong to another image (image sha256 '
            f'{features.image_sha256[:12]}..., given image '
            f'{image_digest(image)[:12]}...)')
    if tuple(features.canvas_shape) != tuple(canvas_shape):
        raise ValueError(f'features were computed on a '
                         f'{features.canvas_shape} canvas, expected '
                         f'{tuple(canvas_shape)}')
    return features
