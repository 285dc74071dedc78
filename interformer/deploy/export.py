"""Export a ``ClickSegmentor`` as ``encoder.onnx`` + ``decoder.onnx`` +
``model.json`` (see :mod:`.graphs` for the tensors).

The TorchScript exporter (``torch.onnx.export(dynamo=False)``) is used: it
traces the sizes as ``Shape`` ops, so with :mod:`.dynamic_ops` both graphs
take any H, W multiple of 32 (the dynamo exporter specialises the Python
arithmetic on sizes). Export runs the plain PyTorch modules of the model
(never a fused fast path).

``fp16=True`` gives a float16 *interface*: the encoder returns its maps and
keys/values in float16 and the decoder takes them in float16 (half the bytes
to store or send per image); both compute in float32 inside, since
onnxruntime's CPU kernels are float32.
"""
import hashlib
import json
import os
import os.path as osp
import tempfile
import warnings
from typing import Dict, Optional

import torch
import torch.nn as nn

from .graphs import (
    DecoderGraph,
    EncoderGraph,
    check_exportable,
    decoder_input_names,
    encoder_names,
)
from .model_info import MODEL_JSON, build_model_info

__all__ = ['export_onnx', 'weights_sha256', 'file_sha256']

DEFAULT_OPSET = 17
TRACE_CANVAS = (128, 160)  # any multiple of 32; the axes stay dynamic


def file_sha256(path: str) -> str:
    """sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def weights_sha256(model: nn.Module) -> str:
    """sha256 of the model's state dict (names, dtypes, shapes, bytes).

    This is the model identity written into ``model.json`` and every
    feature file: features are only accepted by a model with the same
    weights, whatever file they were loaded from. The digest is kept on
    the model with a stamp of its tensors (storage and in-place version
    counter), so asking again costs no hashing until a weight changes
    (e.g. every demo session's predictor on one shared model).
    """
    state = model.state_dict()
    stamp = tuple((name, t.data_ptr(), t._version, tuple(t.shape), t.dtype)
                  for name, t in state.items())
    cached = getattr(model, '_weights_sha256', None)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    digest = hashlib.sha256()
    for name, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'
                      .encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b'')
    model.__dict__['_weights_sha256'] = (stamp, digest.hexdigest())
    return digest.hexdigest()


class _Fp16Encoder(nn.Module):
    """Encoder graph with float16 outputs."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, image):
        return tuple(t.half() for t in self.graph(image))


class _Fp16Decoder(nn.Module):
    """Decoder graph with float16 feature inputs."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, feat0, *args):
        feats = [t.float() for t in (feat0, *args[:-1])]
        return self.graph(*feats, args[-1])


def _atomic_export(module: nn.Module, args: tuple, path: str,
                   **kwargs) -> None:
    """``torch.onnx.export`` into a temporary file, then rename."""
    folder = osp.dirname(osp.abspath(path))
    fd, tmp = tempfile.mkstemp(suffix='.onnx.tmp', dir=folder)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # the shape checks of the model trace as constants (TracerWarning)
            warnings.simplefilter('ignore')
            torch.onnx.export(module, args, tmp, dynamo=False, **kwargs)
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def export_onnx(model: nn.Module,
                out_dir: str,
                opset: int = DEFAULT_OPSET,
                fp16: bool = False,
                checkpoint: Optional[str] = None) -> Dict[str, str]:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``model.json``.

    Args:
        model: a ``ClickSegmentor`` (not modified).
        out_dir: output folder (created).
        opset: ONNX opset (>= 14 for HardSwish).
        fp16: float16 encoder outputs / decoder feature inputs.
        checkpoint: the checkpoint file, recorded with its sha256.

    Returns:
        dict[str, str]: paths of the three files.

    Raises:
        ExportError: the model has a part that cannot be exported (e.g.
            zoom-in refine), named in the message.
    """
    check_exportable(model)
    if opset < 14:
        raise ValueError(f'opset must be >= 14 (HardSwish), got {opset}')
    os.makedirs(out_dir, exist_ok=True)
    model = model.eval()
    encoder, decoder = EncoderGraph(model), DecoderGraph(model)
    if fp16:
        encoder, decoder = _Fp16Encoder(encoder), _Fp16Decoder(decoder)
    height, width = TRACE_CANVAS
    param = next(model.parameters())
    image = torch.zeros(1, 3, height, width, dtype=torch.float32)
    image.normal_(generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        outs = encoder(image.to(param.device))
    outs = tuple(o.cpu() for o in outs)
    encoder, decoder = encoder.cpu(), decoder.cpu()
    ref = torch.full((1, 1, height, width), 2, dtype=torch.uint8)
    enc_names = encoder_names()
    dec_names = decoder_input_names()
    enc_axes = {'image': {2: 'height', 3: 'width'}}
    for i in range(4):
        enc_axes[f'feat{i}'] = {2: f'height_{4 << i}', 3: f'width_{4 << i}'}
        enc_axes[f'key{i}'] = {2: f'tokens{i}'}
        enc_axes[f'value{i}'] = {2: f'tokens{i}'}
    dec_axes = {name: enc_axes[name] for name in dec_names[:-1]}
    dec_axes['ref_label'] = {2: 'height', 3: 'width'}
    dec_axes['logits'] = {2: 'height_4', 3: 'width_4'}
    paths = dict(
        encoder=osp.join(out_dir, 'encoder.onnx'),
        decoder=osp.join(out_dir, 'decoder.onnx'),
        model_json=osp.join(out_dir, MODEL_JSON))
    _atomic_export(
        encoder, (image, ),
        paths['encoder'],
        input_names=['image'],
        output_names=enc_names,
        dynamic_axes=enc_axes,
        opset_version=opset)
    dec_inputs = (outs[0], *outs[4:], ref)
    _atomic_export(
        decoder,
        dec_inputs,
        paths['decoder'],
        input_names=dec_names,
        output_names=['logits'],
        dynamic_axes=dec_axes,
        opset_version=opset)
    info = build_model_info(
        model,
        weights=weights_sha256(model),
        checkpoint=checkpoint,
        checkpoint_sha256=None if checkpoint is None else
        file_sha256(checkpoint),
        opset=opset,
        fp16=fp16,
        feature_shapes={
            name: list(out.shape[1:2]) + [None, None] if i < 4 else
            list(out.shape[1:2]) + [None, int(out.shape[3])]
            for i, (name, out) in enumerate(zip(enc_names, outs))
        })
    info['files'] = {
        key: dict(name=osp.basename(p), bytes=osp.getsize(p),
                  sha256=file_sha256(p))
        for key, p in paths.items() if key != 'model_json'
    }
    tmp = paths['model_json'] + '.tmp'
    with open(tmp, 'w') as f:
        json.dump(info, f, indent=2)
    os.replace(tmp, paths['model_json'])
    return paths
