"""The client-decoding page's routes: the server only encodes (issue 15,
part 4). Torch-free; a FastAPI router for any ASGI app of the project.

The page (``web/client.html``) downloads ``decoder.onnx`` once and each
image's decoder inputs once (float16 for an ``--fp16`` export), then runs
every click in a web worker with onnxruntime-web (``web/node_modules``,
installed by ``npm ci`` in ``interformer/deploy/web``; no CDN).

=============================  ==============================================
``GET  /``                     the page (``/web/<file>``: its scripts)
``GET  /ort/<file>``           onnxruntime-web's WASM build
``GET  /model/model.json``     the export's model.json
``GET  /model/decoder.onnx``   the decoder graph
``POST /api/encode``           image file bytes -> the decoder inputs
                               (:mod:`.wire`), from the feature store when
                               the image is in it, else from the encoder
=============================  ==============================================

:func:`build_client_router` takes the encoder as a callable, so the same
routes serve ``encoder.onnx`` (:func:`.client_app.build_client_app`,
``tools/deploy/serve_client.py``) or the loaded PyTorch model
(``tools/demo.py --client-decoding``).
"""
import os.path as osp
import threading
from typing import Callable, Optional

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException

from interformer.serving.images import DEFAULT_MAX_PIXELS, decode_image

from .feature_store import ImageFeatures
from .model_info import load_model_info
from .store_lookup import StoreLookup
from .wire import encode_features

__all__ = ['build_client_router', 'WEB_DIR', 'ORT_DIR', 'Encoder']

#: (H, W, 3) uint8 RGB image -> its encoder outputs.
Encoder = Callable[[np.ndarray], ImageFeatures]

WEB_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'web')
ORT_DIR = osp.join(WEB_DIR, 'node_modules', 'onnxruntime-web', 'dist')
WEB_FILES = ('client.html', 'client.js', 'reference_label.js',
             'decoder_worker.js')
MODEL_FILES = ('model.json', 'decoder.onnx')
CONTENT_TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript',
    '.mjs': 'text/javascript',
    '.wasm': 'application/wasm',
    '.json': 'application/json',
    '.onnx': 'application/octet-stream',
}
# cross-origin isolation (COOP + COEP): SharedArrayBuffer, so the decoder
# can run on several WASM threads; every file is served from this origin
_HEADERS = {
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Embedder-Policy': 'require-corp',
}


def _file(path: str) -> Response:
    if not osp.isfile(path):
        if path.startswith(ORT_DIR):
            raise HTTPException(503, 'onnxruntime-web is not installed: run '
                                '`npm ci` in interformer/deploy/web')
        raise HTTPException(404, f'not found: {osp.basename(path)}')
    ext = osp.splitext(path)[1]
    return FileResponse(path, headers=_HEADERS, media_type=CONTENT_TYPES.get(
        ext, 'application/octet-stream'))


def build_client_router(model_dir: str, encoder: Encoder,
                        store: Optional[StoreLookup] = None,
                        max_upload_mb: float = 10.0,
                        max_pixels: int = DEFAULT_MAX_PIXELS,
                        lock: Optional[threading.Lock] = None
                        ) -> APIRouter:
    """The page, its files and the encode endpoint (see the module doc).

    Args:
        model_dir: folder written by ``tools/deploy/export_onnx.py``.
        encoder: computes an image's features (the export's model).
        store: stored features answered instead of encoding (same model).
        max_upload_mb, max_pixels: largest accepted image file and image.
        lock: held around every encoder call (shared with other users of
            the same model).

    Raises:
        FileNotFoundError, ValueError: not an export folder, or a store of
            another model than the export's.
    """
    info = load_model_info(model_dir)
    if store is not None and store.weights_sha256 != info['weights_sha256']:
        raise ValueError(f'feature store {store.store_dir} is of another '
                         f'model than the export {model_dir}')
    divisor = int(info['input']['size_divisor'])
    max_upload = int(max_upload_mb * 2**20)
    lock = lock or threading.Lock()
    router = APIRouter(include_in_schema=False)

    @router.get('/')
    @router.get('/index.html')
    def index() -> Response:
        return _file(osp.join(WEB_DIR, 'client.html'))

    @router.get('/web/{name}')
    def web_file(name: str) -> Response:
        if name not in WEB_FILES:
            raise HTTPException(404, f'not found: {name}')
        return _file(osp.join(WEB_DIR, name))

    @router.get('/ort/{name}')
    def ort_file(name: str) -> Response:
        if not name.startswith('ort') or \
                not name.endswith(('.mjs', '.js', '.wasm')):
            raise HTTPException(404, f'not found: {name}')
        return _file(osp.join(ORT_DIR, name))

    @router.get('/model/{name}')
    def model_file(name: str) -> Response:
        if name not in MODEL_FILES:
            raise HTTPException(404, f'not found: {name}')
        return _file(osp.join(model_dir, name))

    def answer(data: bytes) -> Response:
        image = decode_image(data, max_pixels)
        height, width = image.shape[:2]
        canvas = (-(-height // divisor) * divisor,
                  -(-width // divisor) * divisor)
        features = None if store is None else store.features(
            data, image, canvas)
        source = 'store'
        if features is None:
            with lock:
                features = encoder(image)
            source = 'encoder'
        body = encode_features(features, info, source)
        return Response(body, media_type='application/octet-stream',
                        headers={**_HEADERS, 'X-Features-Source': source})

    @router.post('/api/encode')
    async def post_encode(request: Request) -> Response:
        # the app's BodyGuard bounds what is read (413 beyond its limit)
        data = await request.body()
        if not 0 < len(data) <= max_upload:
            raise HTTPException(413 if data else 400,
                                f'the image must be 1 byte to '
                                f'{max_upload_mb:g} MB, got {len(data)}')
        return await run_in_threadpool(answer, data)

    return router
