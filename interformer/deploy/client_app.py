"""A torch-free ASGI app with the client-decoding page only.

``tools/deploy/serve_client.py`` serves it: ``encoder.onnx`` of the export
encodes (onnxruntime, CPU), every click is decoded in the browser. Imports
FastAPI, onnxruntime, numpy and OpenCV, never torch (tested with torch
blocked). ``tools/demo.py --client-decoding`` serves the same routes
(:mod:`.client_routes`) on the demo's app, encoding with the PyTorch model.
"""
from typing import Optional

from fastapi import FastAPI

from interformer.serving.errors import install_error_handlers
from interformer.serving.guard import BodyGuard
from interformer.serving.images import DEFAULT_MAX_PIXELS
from interformer.serving.request_log import RequestLog, new_request_log

from .client_routes import build_client_router
from .onnx_predictor import OnnxPredictor
from .store_lookup import StoreLookup

__all__ = ['build_client_app']


def build_client_app(model_dir: str, store_dir: Optional[str] = None,
                     max_upload_mb: float = 10.0,
                     max_pixels: int = DEFAULT_MAX_PIXELS,
                     num_threads: Optional[int] = None,
                     body_timeout_s: float = 30.0):
    """The client-decoding app of an ONNX export folder.

    Args:
        model_dir: folder written by ``tools/deploy/export_onnx.py``.
        store_dir: optional feature store of the same model
            (``tools/encode_images.py``); its images are not encoded again.
        max_upload_mb, max_pixels: largest accepted image file and image.
        num_threads: onnxruntime threads of the encoder.
        body_timeout_s: a request body must arrive within this time.

    Returns:
        The app wrapped in :class:`BodyGuard`; ``.fastapi`` is the FastAPI
        app, ``.fastapi.state.request_log`` its latest (method, path).

    Raises:
        FileNotFoundError, ValueError: a bad export or store folder, or a
            store of another model (named in the message).
    """
    if max_upload_mb <= 0 or max_pixels <= 0:
        raise ValueError('max_upload_mb and max_pixels must be > 0')
    predictor = OnnxPredictor(model_dir, num_threads=num_threads)
    store = None if store_dir is None else StoreLookup(
        store_dir, predictor.weights_sha256)
    app = FastAPI(title='InterFormer client decoding', docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.request_log = new_request_log()
    app.state.model_dir = model_dir
    app.add_middleware(RequestLog, entries=app.state.request_log)
    install_error_handlers(app)
    app.include_router(build_client_router(
        model_dir, predictor.encode, store, max_upload_mb, max_pixels))
    max_body = int(max_upload_mb * 2**20) + 2**16
    guarded = BodyGuard(app, max_body, body_timeout_s)
    guarded.fastapi = app
    return guarded
