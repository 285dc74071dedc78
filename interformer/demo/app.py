"""The demo page's routes on the service's ASGI app (FastAPI router).

One page (``static/index.html``) talks to JSON endpoints; each browser gets
its own :class:`~interformer.demo.session.DemoSession` keyed by a cookie.

=========================  =================================================
``GET  /``                 the page (``/static/<file>`` for its assets)
``GET  /api/config``       limits the page checks before uploading
``GET  /api/examples``     bundled example images
``POST /api/upload``       image bytes (raw body or multipart form field)
``POST /api/example``      ``{"name": ...}``: use a bundled example
``POST /api/click``        ``{"y": int, "x": int, "positive": bool}``
``POST /api/undo``         remove the last click
``POST /api/reset``        clear the current object's clicks
``POST /api/next``         finish the current object, start a new one
``GET  /api/state``        the current state (``has_image: false`` if none)
``GET  /api/image``        the session's image (JPEG, for display)
``GET  /api/mask.png``     current object's mask, 0/255, image size
``GET  /api/labels.png``   all objects, 0 = background, k = object k
=========================  =================================================

Every state answer carries the RGBA overlay as a PNG data URL, the clicks
and, for a click, the decoder latency measured on the server. Uploads are
header-checked, decoded in memory and never written to disk. Errors are
JSON ``{"error": message}`` (400 bad input, 404, 408, 411, 413 too large).
"""
import base64
import os
import os.path as osp
import secrets
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple

import cv2
import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from interformer.serving.guard import parse_json
from interformer.serving.guard import read_body as guarded_body
from interformer.serving.images import (
    DEFAULT_MAX_PIXELS,
    decode_image,
    encode_jpeg,
    encode_png,
)

from .session import DemoSession, PredictorLike
from .uploads import extract_upload, safe_stem

if TYPE_CHECKING:
    from interformer.deploy.store_lookup import StoreLookup

__all__ = ['build_demo_app', 'build_demo_router', 'STATIC_DIR',
           'EXAMPLES_DIR', 'DemoSessions']

STATIC_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'static')
EXAMPLES_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'examples')
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.webp', '.tif',
                    '.tiff')
CONTENT_TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript; charset=utf-8',
    '.css': 'text/css; charset=utf-8',
    '.png': 'image/png',
    '.jpg': 'image/jpeg',
    '.jpeg': 'image/jpeg',
}
COOKIE_NAME = 'interformer_demo'
MAX_JSON_BYTES = 64 * 1024
_HEADERS = {'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff'}


class DemoSessions:
    """Browser sessions (LRU, at most ``max_sessions``) and one model lock.

    Args:
        predictor_factory: builds a fresh predictor for each new session
            (share one model between them).
        max_sessions: the least recently used session is dropped beyond
            this (its browser must load an image again).
    """

    def __init__(self, predictor_factory: Callable[[], PredictorLike],
                 max_sessions: int = 8,
                 model_lock: Optional[threading.Lock] = None) -> None:
        if max_sessions <= 0:
            raise ValueError('max_sessions must be > 0')
        self.predictor_factory = predictor_factory
        self.max_sessions = max_sessions
        self._sessions: 'OrderedDict[str, DemoSession]' = OrderedDict()
        self._lock = threading.Lock()
        # one model is shared by all sessions (and the service's engine):
        # run it, and build predictors on it, one call at a time
        self.model_lock = model_lock or threading.Lock()

    def get(self, sid: Optional[str]) -> Optional[DemoSession]:
        with self._lock:
            session = self._sessions.get(sid) if sid else None
            if session is not None:
                self._sessions.move_to_end(sid)
            return session

    def new(self) -> Tuple[str, DemoSession]:
        sid = secrets.token_urlsafe(24)
        with self.model_lock:  # a predictor may (re)deploy the model
            session = DemoSession(self.predictor_factory())
        with self._lock:
            self._sessions[sid] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return sid, session


def _state(session: DemoSession, **extra) -> dict:
    overlay = base64.b64encode(encode_png(session.overlay())).decode()
    height, width = session.shape
    state = {
        'has_image': True,
        'name': session.name,
        'width': width,
        'height': height,
        'clicks': [[y, x, p] for y, x, p in session.clicks],
        'num_clicks': len(session.clicks),
        'object_index': session.object_index,
        'num_finished': session.num_finished,
        'mask_area': int(session.current_mask().sum()),
        'features': session.features_source,
        'overlay': 'data:image/png;base64,' + overlay,
    }
    state.update(extra)
    return state


def build_demo_router(predictor_factory: Callable[[], PredictorLike],
                      max_upload_mb: float = 10.0,
                      max_pixels: int = DEFAULT_MAX_PIXELS,
                      max_sessions: int = 8,
                      examples_dir: str = EXAMPLES_DIR,
                      model_lock: Optional[threading.Lock] = None,
                      feature_store: Optional['StoreLookup'] = None
                      ) -> APIRouter:
    """The demo page and its JSON endpoints (see the module doc).

    ``model_lock``: the lock of every other user of the same model (the
    service's ``ClickEngine.model_lock``). ``feature_store``: stored
    features of the same model (``tools/demo.py --features``); an uploaded
    or example image whose file is in it is not encoded again.
    """
    if max_upload_mb <= 0 or max_pixels <= 0:
        raise ValueError('max_upload_mb and max_pixels must be > 0')
    sessions = DemoSessions(predictor_factory, max_sessions, model_lock)
    max_upload = int(max_upload_mb * 2**20)
    router = APIRouter(include_in_schema=False)
    router.sessions = sessions  # for tests and tools

    def examples() -> List[str]:
        if not osp.isdir(examples_dir):
            return []
        return sorted(
            f for f in os.listdir(examples_dir)
            if f.lower().endswith(IMAGE_EXTENSIONS)
            and osp.isfile(osp.join(examples_dir, f)))

    def session_of(request: Request) -> DemoSession:
        session = sessions.get(request.cookies.get(COOKIE_NAME))
        if session is None or not session.has_image:
            raise HTTPException(400, 'no image loaded: upload an image or '
                                'pick an example first')
        return session

    async def read_body(request: Request, limit: int, what: str) -> bytes:
        length = request.headers.get('content-length')
        if length is None and 'transfer-encoding' not in request.headers:
            raise HTTPException(411, 'the request needs a Content-Length')
        return await guarded_body(request, limit, what)

    async def read_json(request: Request) -> dict:
        if request.headers.get('content-length') in (None, '0') and \
                'transfer-encoding' not in request.headers:
            return {}
        body = await read_body(request, MAX_JSON_BYTES, 'the request')
        if not body:
            return {}
        data = parse_json(body)
        if not isinstance(data, dict):
            raise HTTPException(400, 'the request body must be a JSON '
                                'object')
        return data

    def json_response(data: dict, sid: Optional[str] = None) -> Response:
        response = JSONResponse(data, headers=_HEADERS)
        if sid is not None:
            response.set_cookie(COOKIE_NAME, sid, path='/', httponly=True,
                                samesite='strict')
        return response

    def png_response(array, filename: str) -> Response:
        return Response(encode_png(array), media_type='image/png',
                        headers={**_HEADERS, 'Content-Disposition':
                                 f'attachment; filename="{filename}"'})

    def static(name: str) -> Response:
        # only plain files directly inside static/: no '..', no sub-folders
        files = os.listdir(STATIC_DIR) if osp.isdir(STATIC_DIR) else []
        if name not in files:
            raise HTTPException(404, f'no such file: {name}')
        with open(osp.join(STATIC_DIR, name), 'rb') as f:
            body = f.read()
        ext = osp.splitext(name)[1].lower()
        return Response(body, headers=_HEADERS, media_type=CONTENT_TYPES.get(
            ext, 'application/octet-stream'))

    @router.get('/')
    @router.get('/index.html')
    def index() -> Response:
        return static('index.html')

    @router.get('/static/{name}')
    def static_file(name: str) -> Response:
        return static(name)

    @router.get('/api/config')
    def get_config() -> Response:
        return json_response({'max_upload_mb': max_upload_mb,
                              'max_pixels': max_pixels})

    @router.get('/api/examples')
    def get_examples() -> Response:
        return json_response({'examples': examples()})

    @router.get('/api/state')
    def get_state(request: Request) -> Response:
        session = sessions.get(request.cookies.get(COOKIE_NAME))
        if session is None or not session.has_image:
            return json_response({'has_image': False})
        with session.lock:
            return json_response(_state(session))

    @router.get('/api/image')
    def get_image(request: Request) -> Response:
        session = session_of(request)
        with session.lock:
            body = encode_jpeg(session.image)
        return Response(body, media_type='image/jpeg', headers=_HEADERS)

    @router.get('/api/mask.png')
    def get_mask(request: Request) -> Response:
        session = session_of(request)
        with session.lock:
            mask = session.current_mask().astype('uint8') * 255
            name = session.name
        return png_response(mask, f'{name}_mask.png')

    @router.get('/api/labels.png')
    def get_labels(request: Request) -> Response:
        session = session_of(request)
        with session.lock:
            labels = session.label_map()
            name = session.name
        return png_response(labels, f'{name}_labels.png')

    def load(request: Request, image, name: str, data: bytes) -> Response:
        sid = request.cookies.get(COOKIE_NAME)
        session, new_sid = sessions.get(sid), None
        if session is None:
            new_sid, session = sessions.new()
        features = None if feature_store is None else \
            feature_store.features(data, image)
        with session.lock:
            with sessions.model_lock:
                encode_ms = session.set_image(image, name, features)
            return json_response(_state(session,
                                        encode_ms=round(encode_ms, 2)),
                                 new_sid)

    @router.post('/api/upload')
    async def post_upload(request: Request) -> Response:
        body = await read_body(request, max_upload, 'the upload')
        data, filename = extract_upload(request, body)

        def work():
            image = decode_image(data, max_pixels)
            return load(request, image, safe_stem(filename), data)
        return await run_in_threadpool(work)

    @router.post('/api/example')
    async def post_example(request: Request) -> Response:
        name = (await read_json(request)).get('name')
        if name not in examples():
            raise HTTPException(404, f'no such example: {name!r}')

        def work():
            with open(osp.join(examples_dir, name), 'rb') as f:
                data = f.read()
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8),
                               cv2.IMREAD_COLOR)
            if bgr is None:
                raise HTTPException(500, f'cannot read example {name}')
            return load(request, bgr[:, :, ::-1].copy(), safe_stem(name),
                        data)
        return await run_in_threadpool(work)

    @router.post('/api/click')
    async def post_click(request: Request) -> Response:
        data = await read_json(request)
        try:
            y, x = data['y'], data['x']
            positive = data.get('positive', True)
        except KeyError as err:
            raise HTTPException(400, f'click needs "y" and "x", missing '
                                f'{err}') from None
        if not all(isinstance(v, int) and not isinstance(v, bool)
                   for v in (y, x)) or not isinstance(positive, bool):
            raise HTTPException(400, 'click needs integer "y", "x" and a '
                                'boolean "positive"')
        session = session_of(request)

        def work():
            with session.lock:
                try:
                    with sessions.model_lock:
                        latency = session.click(y, x, positive)
                except ValueError as err:
                    raise HTTPException(400, str(err)) from None
                return json_response(_state(session,
                                            latency_ms=round(latency, 2)))
        return await run_in_threadpool(work)

    @router.post('/api/undo')
    async def post_undo(request: Request) -> Response:
        await read_json(request)
        session = session_of(request)

        def work():
            with session.lock:
                with sessions.model_lock:
                    undone = session.undo()
                return json_response(_state(session, changed=undone))
        return await run_in_threadpool(work)

    @router.post('/api/reset')
    async def post_reset(request: Request) -> Response:
        await read_json(request)
        session = session_of(request)
        with session.lock:
            session.reset()
            return json_response(_state(session, changed=True))

    @router.post('/api/next')
    async def post_next(request: Request) -> Response:
        await read_json(request)
        session = session_of(request)
        with session.lock:
            finished = session.next_object()
            return json_response(_state(session, changed=finished))

    return router


def build_demo_app(predictor_factory: Callable[[], PredictorLike],
                   max_upload_mb: float = 10.0,
                   max_pixels: int = DEFAULT_MAX_PIXELS,
                   max_sessions: int = 8,
                   examples_dir: str = EXAMPLES_DIR,
                   body_timeout_s: float = 30.0):
    """An ASGI app with the demo page only (no JSON API)."""
    from interformer.serving.app import ServiceConfig, create_app
    config = ServiceConfig(max_upload_mb=max_upload_mb,
                           max_pixels=max_pixels,
                           body_timeout_s=body_timeout_s)
    return create_app(None, config, predictor_factory,
                      max_sessions=max_sessions, examples_dir=examples_dir)
