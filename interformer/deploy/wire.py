"""The binary answer of ``POST /api/encode``: an image's decoder inputs.

Layout (torch-free; parsed by ``web/client.js``)::

    uint32 little-endian   n, the length of the JSON header
    n bytes                JSON header: image_shape [H, W], canvas_shape
                           [Hc, Wc], source ("encoder" or "store") and
                           tensors: [{name, dtype, dims, offset, nbytes}]
    the tensors' bytes     C order, offsets relative to the end of the
                           header

Only what ``decoder.onnx`` reads is sent (``feat0`` and the cross-attention
keys/values, see ``model.json``'s ``decoder.inputs``), in the export's
feature dtype (float16 for an ``--fp16`` export).
"""
import json
import struct
from typing import Dict, List, Tuple

import numpy as np

from .feature_store import ImageFeatures

__all__ = ['decoder_feature_names', 'encode_features', 'decode_features']

_HEADER = struct.Struct('<I')


def decoder_feature_names(info: dict) -> List[str]:
    """The decoder's feature inputs (all but ``ref_label``), in
    ``model.json`` order."""
    return [n for n in info['decoder']['inputs'] if n != 'ref_label']


def encode_features(features: ImageFeatures, info: dict,
                    source: str = 'encoder') -> bytes:
    """The wire answer for one image.

    Args:
        features: the image's encoder outputs (any float dtype).
        info: the export's ``model.json`` (names and ``fp16``).
        source: where the features come from (told to the page).
    """
    dtype = np.dtype(np.float16 if info['fp16'] else np.float32)
    tensors, blobs, offset = [], [], 0
    for name in decoder_feature_names(info):
        array = np.ascontiguousarray(features.arrays[name].astype(
            dtype, copy=False))
        tensors.append(dict(name=name, dtype=dtype.name,
                            dims=list(array.shape), offset=offset,
                            nbytes=array.nbytes))
        blobs.append(array.tobytes())
        offset += array.nbytes
    header = json.dumps(dict(
        image_shape=[int(s) for s in features.image_shape],
        canvas_shape=[int(s) for s in features.canvas_shape],
        source=source, tensors=tensors)).encode()
    return _HEADER.pack(len(header)) + header + b''.join(blobs)


def decode_features(body: bytes) -> Tuple[dict, Dict[str, np.ndarray]]:
    """(header, name -> array): the inverse of :func:`encode_features`."""
    (length, ) = _HEADER.unpack_from(body)
    header = json.loads(body[_HEADER.size:_HEADER.size + length])
    base = _HEADER.size + length
    arrays = {}
    for t in header['tensors']:
        start = base + t['offset']
        arrays[t['name']] = np.frombuffer(
            body[start:start + t['nbytes']], t['dtype']).reshape(t['dims'])
    return header, arrays
