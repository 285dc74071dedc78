"""Client-side decoding server: the server only encodes (issue 15, part 4).

The page (``web/client.html``) downloads ``decoder.onnx`` once and each
image's decoder inputs once (float16 for an ``--fp16`` export), then runs
every click in a web worker with onnxruntime-web (``web/node_modules``,
installed by ``npm ci`` in ``interformer/deploy/web``; no CDN). Routes:

* ``GET /`` the page; ``GET /web/<file>`` its scripts;
  ``GET /ort/<file>`` onnxruntime-web's WASM build;
* ``GET /model/model.json``, ``GET /model/decoder.onnx``;
* ``POST /api/encode`` (body: the image file) -> a binary answer:
  uint32 little-endian header length, a JSON header (``image_shape``,
  ``canvas_shape``, ``tensors``: name, dtype, dims, offset, nbytes) and the
  tensors' bytes.

Every request is logged (``server.request_log``), which shows that clicks
cause no request. Torch-free: encoding runs ``encoder.onnx``
(:class:`~interformer.deploy.OnnxPredictor`).
"""
import json
import os.path as osp
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import List, Tuple

import cv2
import numpy as np

from .onnx_predictor import OnnxPredictor

__all__ = ['ClientDecodingServer', 'encode_response', 'WEB_DIR']

WEB_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'web')
ORT_DIR = osp.join(WEB_DIR, 'node_modules', 'onnxruntime-web', 'dist')
WEB_FILES = ('client.html', 'client.js', 'reference_label.js',
             'decoder_worker.js')
CONTENT_TYPES = {
    '.html': 'text/html; charset=utf-8',
    '.js': 'text/javascript',
    '.mjs': 'text/javascript',
    '.wasm': 'application/wasm',
    '.json': 'application/json',
    '.onnx': 'application/octet-stream',
}


def encode_response(predictor: OnnxPredictor, image: np.ndarray) -> bytes:
    """Encode an RGB image; the decoder's inputs in the wire format."""
    features = predictor.encode(image)
    names = [n for n in predictor._decoder_inputs if n != 'ref_label']
    dtype = predictor._feature_dtype
    tensors, blobs, offset = [], [], 0
    for name in names:
        array = np.ascontiguousarray(features.arrays[name].astype(dtype))
        tensors.append(dict(name=name, dtype=np.dtype(dtype).name,
                            dims=list(array.shape), offset=offset,
                            nbytes=array.nbytes))
        blobs.append(array.tobytes())
        offset += array.nbytes
    header = json.dumps(dict(image_shape=list(features.image_shape),
                             canvas_shape=list(features.canvas_shape),
                             tensors=tensors)).encode()
    return struct.pack('<I', len(header)) + header + b''.join(blobs)


class _Handler(BaseHTTPRequestHandler):
    server: 'ClientDecodingServer'

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass  # requests are kept in server.request_log

    def _log(self) -> None:
        with self.server.log_lock:
            self.server.request_log.append((self.command, self.path))

    def _send(self, body: bytes, content_type: str, status: int = 200):
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        self.end_headers()
        self.wfile.write(body)

    def _send_file(self, path: str) -> None:
        if not osp.isfile(path):
            if path.startswith(ORT_DIR):
                return self._send(
                    b'onnxruntime-web is not installed: run `npm ci` in '
                    b'interformer/deploy/web', 'text/plain', 503)
            return self._send(b'not found', 'text/plain', 404)
        with open(path, 'rb') as f:
            body = f.read()
        ext = osp.splitext(path)[1]
        self._send(body, CONTENT_TYPES.get(ext, 'application/octet-stream'))

    def do_GET(self) -> None:  # noqa: N802
        self._log()
        path = self.path.split('?')[0]
        if path in ('/', '/index.html'):
            return self._send_file(osp.join(WEB_DIR, 'client.html'))
        if path.startswith('/web/') and path[5:] in WEB_FILES:
            return self._send_file(osp.join(WEB_DIR, path[5:]))
        if path.startswith('/ort/'):
            name = path[5:]
            if '/' in name or not name.startswith('ort') or \
                    not name.endswith(('.mjs', '.js', '.wasm')):
                return self._send(b'not found', 'text/plain', 404)
            return self._send_file(osp.join(ORT_DIR, name))
        if path in ('/model/model.json', '/model/decoder.onnx'):
            return self._send_file(
                osp.join(self.server.model_dir, path[len('/model/'):]))
        self._send(b'not found', 'text/plain', 404)

    def do_POST(self) -> None:  # noqa: N802
        self._log()
        if self.path.split('?')[0] != '/api/encode':
            return self._send(b'not found', 'text/plain', 404)
        length = int(self.headers.get('Content-Length') or 0)
        if not 0 < length <= self.server.max_upload_bytes:
            return self._send(
                f'image must be 1..{self.server.max_upload_bytes} bytes, '
                f'got {length}'.encode(), 'text/plain', 413)
        data = self.rfile.read(length)
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            return self._send(b'not a decodable image', 'text/plain', 400)
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        try:
            with self.server.encode_lock:
                body = encode_response(self.server.predictor, image)
        except Exception as err:  # the server stays up
            return self._send(f'encoding failed: {err}'.encode(),
                              'text/plain', 500)
        self._send(body, 'application/octet-stream')


class ClientDecodingServer(ThreadingHTTPServer):
    """HTTP server of the client-decoding page for an ONNX export folder.

    Args:
        model_dir: folder written by ``tools/deploy/export_onnx.py``.
        address: (host, port); port 0 picks a free one.
        max_upload_mb: largest accepted image file.
        num_threads: onnxruntime threads of the encoder.
    """

    daemon_threads = True

    def __init__(self, model_dir: str,
                 address: Tuple[str, int] = ('127.0.0.1', 7861),
                 max_upload_mb: float = 10.0,
                 num_threads=None) -> None:
        self.model_dir = model_dir
        self.predictor = OnnxPredictor(model_dir, num_threads=num_threads)
        self.max_upload_bytes = int(max_upload_mb * 2**20)
        self.request_log: List[Tuple[str, str]] = []
        self.log_lock = threading.Lock()
        self.encode_lock = threading.Lock()
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f'http://{host}:{port}/'
