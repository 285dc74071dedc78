"""``model.json``: what a client needs besides the two ONNX graphs.

Torch-free (read by :class:`~interformer.deploy.OnnxPredictor`). Fields:

* ``weights_sha256``: sha256 of the exported state dict, the model
  identity that feature files carry (``checkpoint_sha256``: of the
  checkpoint file, when one was given);
* ``input``: RGB mean/std (the image is normalised, then zero-padded at the
  bottom/right to a multiple of ``size_divisor``), NCHW float32;
* ``reference_label``: the 5 codes, the click radius, the update table
  (entry ``5 * foreground + code`` -> new code);
* ``encoder`` / ``decoder``: input and output names with shapes (``H``,
  ``W`` the padded canvas) and dtypes;
* ``files``: byte size and sha256 of both graphs.
"""
import json
import os.path as osp
from typing import Any, Dict, Optional

import numpy as np

from interformer.interaction.reference_label import (
    CLICK_RADIUS,
    NUM_REF_STATES,
    REF_DEFINITE_BG,
    REF_DEFINITE_FG,
    REF_POSSIBLE_BG,
    REF_POSSIBLE_FG,
    REF_UNKNOWN,
    update_by_prediction,
)

__all__ = [
    'MODEL_JSON', 'FORMAT', 'build_model_info', 'load_model_info',
    'load_format_json',
    'IMAGENET_MEAN', 'IMAGENET_STD', 'SIZE_DIVISOR', 'NUM_LEVELS'
]

MODEL_JSON = 'model.json'
FORMAT = 'interformer-onnx/1'
CLICK_RADIUS_KEY = 'click_radius'
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
SIZE_DIVISOR = 32
NUM_LEVELS = 4


def update_table() -> list:
    """``update_by_prediction`` tabulated: entry ``5 * fg + code``."""
    codes = np.arange(NUM_REF_STATES, dtype=np.uint8)
    return np.concatenate([
        update_by_prediction(codes, np.zeros(NUM_REF_STATES, bool)),
        update_by_prediction(codes, np.ones(NUM_REF_STATES, bool))
    ]).astype(int).tolist()


def _normalisation(model) -> Dict[str, list]:
    pre = getattr(model, 'data_preprocessor', None)
    mean = getattr(pre, 'mean', None)
    std = getattr(pre, 'std', None)
    mean = IMAGENET_MEAN if mean is None else mean.flatten().tolist()
    std = IMAGENET_STD if std is None else std.flatten().tolist()
    return dict(mean=[float(v) for v in mean], std=[float(v) for v in std])


def build_model_info(model, weights: str, checkpoint: Optional[str],
                     checkpoint_sha256: Optional[str], opset: int,
                     fp16: bool, feature_shapes: Dict[str, list]) -> dict:
    """The ``model.json`` dictionary for an exported segmentor.

    Args:
        model: the exported ``ClickSegmentor``.
        weights: its :func:`~interformer.deploy.export.weights_sha256`.
        checkpoint, checkpoint_sha256: the checkpoint file and its hash.
        opset: ONNX opset of both graphs.
        fp16: float16 feature interface.
        feature_shapes: encoder output name -> shape after the batch axis,
            ``None`` for a dynamic axis.
    """
    feat_type = 'float16' if fp16 else 'float32'
    sym = {0: 'H/4', 1: 'H/8', 2: 'H/16', 3: 'H/32'}
    outputs = {}
    for name, shape in feature_shapes.items():
        level = int(name[-1])
        if name.startswith('feat'):
            dims = [1, shape[0], sym[level], sym[level].replace('H', 'W')]
        else:
            dims = [1, shape[0], f'N{level}', shape[2]]
        outputs[name] = dict(shape=dims, dtype=feat_type)
    dec_inputs = {k: v for k, v in outputs.items() if k != 'feat1'
                  and k != 'feat2' and k != 'feat3'}
    dec_inputs['ref_label'] = dict(shape=[1, 1, 'H', 'W'], dtype='uint8')
    return {
        'format': FORMAT,
        'model_type': type(model).__name__,
        'weights_sha256': weights,
        'checkpoint': None if checkpoint is None else osp.basename(
            checkpoint),
        'checkpoint_sha256': checkpoint_sha256,
        'opset': opset,
        'fp16': fp16,
        'input': dict(
            **_normalisation(model),
            channel_order='RGB',
            layout='NCHW',
            dtype='float32',
            size_divisor=SIZE_DIVISOR,
            padding='zeros at the bottom/right after normalisation'),
        'reference_label': {
            'codes': dict(
                definite_bg=REF_DEFINITE_BG,
                possible_bg=REF_POSSIBLE_BG,
                unknown=REF_UNKNOWN,
                possible_fg=REF_POSSIBLE_FG,
                definite_fg=REF_DEFINITE_FG),
            CLICK_RADIUS_KEY: CLICK_RADIUS,
            'disk': 'dy*dy + dx*dx <= radius*radius, (y, x) = (row, col)',
            'update_table': update_table(),
        },
        'encoder': dict(
            inputs={'image': dict(shape=[1, 3, 'H', 'W'],
                                  dtype='float32')},
            outputs=outputs),
        'decoder': dict(
            inputs=dec_inputs,
            outputs={'logits': dict(shape=[1, 2, 'H/4', 'W/4'],
                                    dtype='float32')},
            logits='(background, foreground) at stride 4; resize '
            'bilinear (align_corners=False) to the canvas, foreground '
            'where l1 > l0'),
    }


def load_format_json(path: str, fmt: str, kind: str,
                     missing_hint: str) -> Dict[str, Any]:
    """A JSON object whose ``format`` field is ``fmt`` (``model.json``, a
    feature store's manifest), with one error naming the file.

    Args:
        path: the file.
        fmt: the expected ``format`` value.
        kind: what the file should be, for the error (``'an InterFormer
            ONNX export'``).
        missing_hint: what to do when the file does not exist.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON, or not an object of format ``fmt``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} not found: {missing_hint}')
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f'{path} is not valid JSON: {err}') from None
    if not isinstance(data, dict) or data.get('format') != fmt:
        raise ValueError(f'{path} is not {kind} (format {fmt!r} expected)')
    return data


def load_model_info(folder: str) -> Dict[str, Any]:
    """Read and check ``<folder>/model.json``.

    Raises:
        FileNotFoundError: no model.json or graph file.
        ValueError: not an InterFormer ONNX export.
    """
    path = osp.join(folder, MODEL_JSON)
    info = load_format_json(
        path, FORMAT, 'an InterFormer ONNX export',
        'export the model with tools/deploy/export_onnx.py first')
    for key in ('encoder', 'decoder'):
        name = osp.join(folder, f'{key}.onnx')
        if not osp.isfile(name):
            raise FileNotFoundError(f'{name} not found next to {path}')
    return info
