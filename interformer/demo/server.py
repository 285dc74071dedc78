"""A small standard-library HTTP server for the interactive demo.

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
``GET  /api/state``        the current state (same JSON as the POSTs)
``GET  /api/image``        the session's image (JPEG, for display)
``GET  /api/mask.png``     current object's mask, 0/255, image size
``GET  /api/labels.png``   all objects, 0 = background, k = object k
=========================  =================================================

Every state answer carries the RGBA overlay as a PNG data URL, the clicks
and, for a click, the decoder latency measured on the server. Uploads are
decoded in memory and never written to disk. Errors are JSON
``{"error": message}`` with status 400 (bad input), 404, 411 or 413 (too
large: bytes or pixels).
"""
import base64
import json
import os
import os.path as osp
import re
import secrets
import threading
from collections import OrderedDict
from email import policy
from email.parser import BytesParser
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

import cv2

from .images import (
    DEFAULT_MAX_PIXELS,
    UploadError,
    decode_image,
    encode_jpeg,
    encode_png,
)
from .session import DemoSession, PredictorLike

__all__ = ['DemoServer', 'STATIC_DIR', 'EXAMPLES_DIR']

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
# Bodies larger than the limit are read and dropped up to this many times
# the limit (so the browser receives the 413); beyond it the connection is
# closed instead.
DRAIN_FACTOR = 4
_CHUNK = 1 << 20
_NAME_RE = re.compile(r'[^A-Za-z0-9._-]+')


def _safe_stem(filename: str) -> str:
    """A download-safe stem from a user-supplied file name."""
    stem = osp.splitext(osp.basename(filename.replace('\\', '/')))[0]
    stem = _NAME_RE.sub('_', stem).strip('._')[:64]
    return stem or 'image'


class DemoServer(ThreadingHTTPServer):
    """The demo's HTTP server.

    Args:
        predictor_factory: builds a fresh predictor for each new browser
            session (share one model between them, e.g.
            ``lambda: InterFormerPredictor(model)``).
        host: address to bind, ``127.0.0.1`` by default (local only).
        port: TCP port; 0 picks a free one (see ``server_address``).
        max_upload_mb: largest accepted upload, in MiB.
        max_pixels: largest accepted width * height.
        max_sessions: sessions kept at once; the least recently used one is
            dropped beyond this (its browser must load an image again).
        examples_dir: folder of bundled example images.
    """

    daemon_threads = True

    def __init__(self,
                 predictor_factory: Callable[[], PredictorLike],
                 host: str = '127.0.0.1',
                 port: int = 7860,
                 max_upload_mb: float = 10.0,
                 max_pixels: int = DEFAULT_MAX_PIXELS,
                 max_sessions: int = 8,
                 examples_dir: str = EXAMPLES_DIR) -> None:
        if max_upload_mb <= 0:
            raise ValueError(f'max_upload_mb must be > 0, '
                             f'got {max_upload_mb}')
        if max_pixels <= 0 or max_sessions <= 0:
            raise ValueError('max_pixels and max_sessions must be > 0')
        self.predictor_factory = predictor_factory
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_upload_mb = max_upload_mb
        self.max_pixels = int(max_pixels)
        self.max_sessions = int(max_sessions)
        self.examples_dir = examples_dir
        self.verbose = False  # log every request to stderr
        self._sessions: 'OrderedDict[str, DemoSession]' = OrderedDict()
        self._sessions_lock = threading.Lock()
        # one model is shared by all sessions: run it one call at a time
        self.model_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f'http://{host}:{port}/'

    # ------------------------------------------------------------ sessions
    def get_session(self, sid: Optional[str]) -> Optional[DemoSession]:
        with self._sessions_lock:
            session = self._sessions.get(sid) if sid else None
            if session is not None:
                self._sessions.move_to_end(sid)
            return session

    def new_session(self) -> Tuple[str, DemoSession]:
        sid = secrets.token_urlsafe(24)
        session = DemoSession(self.predictor_factory())
        with self._sessions_lock:
            self._sessions[sid] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return sid, session

    # ------------------------------------------------------------ examples
    def examples(self) -> List[str]:
        """File names of the bundled example images, sorted."""
        if not osp.isdir(self.examples_dir):
            return []
        return sorted(
            f for f in os.listdir(self.examples_dir)
            if f.lower().endswith(IMAGE_EXTENSIONS)
            and osp.isfile(osp.join(self.examples_dir, f)))


class _HTTPError(Exception):

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the session of the requesting browser."""

    server: DemoServer
    protocol_version = 'HTTP/1.1'
    server_version = 'InterFormerDemo/1.0'

    # ------------------------------------------------------------- routing
    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._dispatch({
            '/': self._get_index,
            '/index.html': self._get_index,
            '/api/config': self._get_config,
            '/api/examples': self._get_examples,
            '/api/state': self._get_state,
            '/api/image': self._get_image,
            '/api/mask.png': self._get_mask,
            '/api/labels.png': self._get_labels,
        })

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch({
            '/api/upload': self._post_upload,
            '/api/example': self._post_example,
            '/api/click': self._post_click,
            '/api/undo': self._post_undo,
            '/api/reset': self._post_reset,
            '/api/next': self._post_next,
        })

    def _dispatch(self, routes: Dict[str, Callable[[], None]]) -> None:
        self._new_sid: Optional[str] = None
        path = urlsplit(self.path).path
        try:
            handler = routes.get(path)
            if handler is None and self.command == 'GET' and \
                    path.startswith('/static/'):
                self._get_static(path[len('/static/'):])
            elif handler is None:
                raise _HTTPError(404, f'no such page: {path}')
            else:
                handler()
        except (_HTTPError, UploadError) as err:
            self._send_error(err.status, str(err))
        except Exception as err:  # keep serving; tell the page what failed
            self.log_error('error on %s: %r', path, err)
            self._send_error(500, f'server error: {err}')

    def _send_error(self, status: int, message: str) -> None:
        if self.command != 'GET':
            # the body may be unread: do not reuse this connection
            self.close_connection = True
        self._send_json({'error': message}, status)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        if getattr(self.server, 'verbose', False):
            super().log_message(format, *args)

    # ------------------------------------------------------------- helpers
    def _sid(self) -> Optional[str]:
        cookie = SimpleCookie(self.headers.get('Cookie', ''))
        morsel = cookie.get(COOKIE_NAME)
        return morsel.value if morsel else None

    def _session(self, create: bool = False) -> DemoSession:
        session = self.server.get_session(self._sid())
        if session is None and create:
            self._new_sid, session = self.server.new_session()
        if session is None or (not create and not session.has_image):
            raise _HTTPError(400, 'no image loaded: upload an image or '
                             'pick an example first')
        return session

    def _read_body(self, limit: int, what: str,
                   required: bool = True) -> bytes:
        length = self.headers.get('Content-Length')
        if length is None and not required and \
                'Transfer-Encoding' not in self.headers:
            return b''
        if length is None:
            self.close_connection = True
            raise _HTTPError(411, 'the request needs a Content-Length')
        try:
            length = int(length)
        except ValueError:
            raise _HTTPError(400, 'bad Content-Length') from None
        if length < 0:
            raise _HTTPError(400, 'bad Content-Length')
        if length > limit:
            self._drain(length, limit)
            raise _HTTPError(
                413, f'{what} is {length / 2**20:.3g} MB; the limit is '
                f'{limit / 2**20:.3g} MB')
        return self.rfile.read(length)

    def _drain(self, length: int, limit: int) -> None:
        """Discard a too-large body so the client can read the answer."""
        if length > DRAIN_FACTOR * limit:
            self.close_connection = True
            return
        while length > 0:
            chunk = self.rfile.read(min(_CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)

    def _read_json(self) -> dict:
        body = self._read_body(MAX_JSON_BYTES, 'the request',
                               required=False)
        if not body:
            return {}
        try:
            data = json.loads(body)
        except ValueError:
            raise _HTTPError(400, 'the request body is not JSON') from None
        if not isinstance(data, dict):
            raise _HTTPError(400, 'the request body must be a JSON object')
        return data

    def _send(self, body: bytes, content_type: str, status: int = 200,
              headers: Optional[Dict[str, str]] = None) -> None:
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        self.send_header('X-Content-Type-Options', 'nosniff')
        if self._new_sid is not None:
            self.send_header(
                'Set-Cookie', f'{COOKIE_NAME}={self._new_sid}; Path=/; '
                'HttpOnly; SameSite=Strict')
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header('Connection', 'close')
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, data: dict, status: int = 200) -> None:
        self._send(json.dumps(data).encode(), 'application/json', status)

    def _send_state(self, session: DemoSession, **extra) -> None:
        overlay = base64.b64encode(encode_png(session.overlay())).decode()
        height, width = session.shape
        state = {
            'name': session.name,
            'width': width,
            'height': height,
            'clicks': [[y, x, p] for y, x, p in session.clicks],
            'num_clicks': len(session.clicks),
            'object_index': session.object_index,
            'num_finished': session.num_finished,
            'mask_area': int(session.current_mask().sum()),
            'overlay': 'data:image/png;base64,' + overlay,
        }
        state.update(extra)
        self._send_json(state)

    def _send_png(self, array, filename: str) -> None:
        self._send(encode_png(array), 'image/png', headers={
            'Content-Disposition': f'attachment; filename="{filename}"'})

    # ------------------------------------------------------------ GET pages
    def _get_index(self) -> None:
        self._get_static('index.html')

    def _get_static(self, name: str) -> None:
        # only plain files directly inside static/: no '..', no sub-folders
        files = os.listdir(STATIC_DIR) if osp.isdir(STATIC_DIR) else []
        if name not in files:
            raise _HTTPError(404, f'no such file: {name}')
        ext = osp.splitext(name)[1].lower()
        with open(osp.join(STATIC_DIR, name), 'rb') as f:
            body = f.read()
        self._send(body, CONTENT_TYPES.get(ext, 'application/octet-stream'))

    def _get_config(self) -> None:
        self._send_json({'max_upload_mb': self.server.max_upload_mb,
                         'max_pixels': self.server.max_pixels})

    def _get_examples(self) -> None:
        self._send_json({'examples': self.server.examples()})

    # ------------------------------------------------------------ GET state
    def _get_state(self) -> None:
        session = self._session()
        with session.lock:
            self._send_state(session)

    def _get_image(self) -> None:
        session = self._session()
        with session.lock:
            body = encode_jpeg(session.image)
        self._send(body, 'image/jpeg')

    def _get_mask(self) -> None:
        session = self._session()
        with session.lock:
            mask = session.current_mask().astype('uint8') * 255
            name = session.name
        self._send_png(mask, f'{name}_mask.png')

    def _get_labels(self) -> None:
        session = self._session()
        with session.lock:
            labels = session.label_map()
            name = session.name
        self._send_png(labels, f'{name}_labels.png')

    # --------------------------------------------------------- POST actions
    def _post_upload(self) -> None:
        body = self._read_body(self.server.max_upload_bytes, 'the upload')
        data, filename = self._extract_upload(body)
        image = decode_image(data, self.server.max_pixels)
        self._load(image, _safe_stem(filename))

    def _extract_upload(self, body: bytes) -> Tuple[bytes, str]:
        """File bytes and name from a raw or multipart/form-data body."""
        content_type = self.headers.get('Content-Type', '')
        filename = unquote(self.headers.get('X-Filename', 'image'))
        if not content_type.lower().startswith('multipart/form-data'):
            return body, filename
        head = f'Content-Type: {content_type}\r\n\r\n'.encode()
        message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
        if not message.is_multipart():
            raise _HTTPError(400, 'malformed multipart upload')
        for part in message.iter_parts():
            if part.get_filename() is not None or \
                    part.get_param('name', header='content-disposition') \
                    in ('image', 'file'):
                return (part.get_payload(decode=True) or b'',
                        part.get_filename() or filename)
        raise _HTTPError(400, 'the multipart upload has no file field '
                         '(send the image as field "image")')

    def _post_example(self) -> None:
        name = self._read_json().get('name')
        if name not in self.server.examples():
            raise _HTTPError(404, f'no such example: {name!r}')
        path = osp.join(self.server.examples_dir, name)
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise _HTTPError(500, f'cannot read example {name}')
        self._load(bgr[:, :, ::-1].copy(), _safe_stem(name))

    def _load(self, image, name: str) -> None:
        session = self._session(create=True)
        with session.lock, self.server.model_lock:
            encode_ms = session.set_image(image, name)
        with session.lock:
            self._send_state(session, encode_ms=round(encode_ms, 2))

    def _post_click(self) -> None:
        data = self._read_json()
        try:
            y, x = data['y'], data['x']
            positive = data.get('positive', True)
        except KeyError as err:
            raise _HTTPError(400, f'click needs "y" and "x", missing '
                             f'{err}') from None
        if not all(isinstance(v, int) and not isinstance(v, bool)
                   for v in (y, x)) or not isinstance(positive, bool):
            raise _HTTPError(400, 'click needs integer "y", "x" and a '
                             'boolean "positive"')
        session = self._session()
        with session.lock:
            try:
                with self.server.model_lock:
                    latency = session.click(y, x, positive)
            except ValueError as err:
                raise _HTTPError(400, str(err)) from None
            self._send_state(session, latency_ms=round(latency, 2))

    def _post_undo(self) -> None:
        self._read_json()
        session = self._session()
        with session.lock:
            with self.server.model_lock:
                undone = session.undo()
            self._send_state(session, changed=undone)

    def _post_reset(self) -> None:
        self._read_json()
        session = self._session()
        with session.lock:
            session.reset()
            self._send_state(session, changed=True)

    def _post_next(self) -> None:
        self._read_json()
        session = self._session()
        with session.lock:
            finished = session.next_object()
            self._send_state(session, changed=finished)

