"""Find an image's features in a feature store by content (torch-free).

A store written by ``tools/encode_images.py`` (:mod:`.encode`) names each
feature file by the sha256 of the image file's bytes, and its manifest
holds the model identity. :class:`StoreLookup` opens a store for one model
(refusing another model's store at once) and answers "are these image
bytes in the store?" with the checked :class:`ImageFeatures` or ``None``.
The demo (``tools/demo.py --features STORE``) and the client-decoding
server use it instead of running the encoder.
"""
import hashlib
import os.path as osp
from typing import Dict, Optional, Tuple

import numpy as np

from interformer.interaction.geometry import canvas_shape

from .feature_store import ImageFeatures, check_features
from .model_info import load_format_json

__all__ = ['StoreLookup', 'MANIFEST', 'MANIFEST_FORMAT']

MANIFEST = 'manifest.json'
MANIFEST_FORMAT = 'interformer-features/1'


class StoreLookup:
    """The ``ok`` entries of a feature store, for one model.

    Args:
        store_dir: folder with ``manifest.json`` and ``features/``.
        weights_sha256: the serving model's identity; a store of another
            model is refused.

    Raises:
        FileNotFoundError: no manifest (the message names the folder).
        ValueError: not a store, or a store of another model.
    """

    def __init__(self, store_dir: str, weights_sha256: str) -> None:
        manifest = load_format_json(
            osp.join(store_dir, MANIFEST), MANIFEST_FORMAT,
            'a feature-store manifest',
            '--features must be a folder written by tools/encode_images.py')
        stored = str(manifest.get('weights_sha256'))
        if stored != weights_sha256:
            raise ValueError(
                f'feature store {store_dir} was encoded by another model '
                f'(weights sha256 {stored[:12]}..., the served model '
                f'{weights_sha256[:12]}...); encode the images with this '
                f'checkpoint (tools/encode_images.py)')
        self.store_dir = store_dir
        self.weights_sha256 = weights_sha256
        self.files: Dict[str, str] = {
            e['sha256']: osp.join(store_dir, e['file'])
            for e in manifest.get('images', [])
            if e.get('status') == 'ok' and e.get('file')
        }

    def __len__(self) -> int:
        return len(self.files)

    def find(self, data: bytes) -> Optional[str]:
        """The feature file of these image file bytes, or ``None``."""
        path = self.files.get(hashlib.sha256(data).hexdigest())
        return path if path is not None and osp.isfile(path) else None

    def features(self, data: bytes, image: np.ndarray,
                 canvas: Optional[Tuple[int, int]] = None
                 ) -> Optional[ImageFeatures]:
        """The stored features of ``data`` decoded as ``image`` (H, W, 3
        RGB), checked (model, pixels, (Hc, Wc) canvas: the image padded to
        a multiple of 32 by default), or ``None`` when the store has no
        such image or its entry does not match (e.g. decoded differently):
        the caller then encodes."""
        path = self.find(data)
        if path is None:
            return None
        if canvas is None:
            canvas = canvas_shape(*image.shape[:2])
        try:
            return check_features(path, self.weights_sha256, image, canvas)
        except ValueError:
            return None
