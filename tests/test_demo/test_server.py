"""The demo app over HTTP (urllib) with the colour stand-in segmentor."""
import http.cookiejar
import json
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from interformer.demo import encode_png


class Client:
    """A browser-like client: keeps the session cookie."""

    def __init__(self, server):
        self.base = server.url.rstrip('/')
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, path, data=None, headers=None, method=None):
        req = urllib.request.Request(self.base + path, data=data,
                                     headers=headers or {}, method=method)
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()

    def post(self, path, payload=None):
        status, _, body = self.request(
            path, json.dumps(payload or {}).encode(),
            {'Content-Type': 'application/json'})
        return status, json.loads(body)

    def upload(self, data, filename='photo.png'):
        status, _, body = self.request(
            '/api/upload', data, {'Content-Type': 'application/octet-stream',
                                  'X-Filename': filename})
        return status, json.loads(body)

    def png(self, path):
        status, headers, body = self.request(path)
        assert status == 200 and headers['Content-Type'] == 'image/png'
        return headers, cv2.imdecode(np.frombuffer(body, np.uint8),
                                     cv2.IMREAD_UNCHANGED)


@pytest.fixture
def client(running_server):
    return Client(running_server())


def test_page_and_static_files(client):
    status, headers, body = client.request('/')
    assert status == 200 and b'<canvas id="canvas"' in body
    assert headers['Content-Type'].startswith('text/html')
    status, _, body = client.request('/static/demo.js')
    assert status == 200 and b'contextmenu' in body
    for path in ('/static/../server.py', '/static/%2e%2e/server.py',
                 '/static/', '/nope'):
        assert client.request(path)[0] == 404, path


def test_upload_click_download_flow(client, image):
    status, state = client.upload(encode_png(image), '../../etc/my photo.png')
    assert status == 200, state
    assert (state['width'], state['height']) == (128, 96)
    assert state['name'] == 'my_photo' and state['num_clicks'] == 0
    assert state['encode_ms'] >= 0
    status, state = client.post('/api/click', {'y': 32, 'x': 32,
                                               'positive': True})
    assert status == 200, state
    assert state['num_clicks'] == 1 and state['mask_area'] == 32 * 32
    assert state['latency_ms'] > 0
    assert state['overlay'].startswith('data:image/png;base64,')
    headers, mask = client.png('/api/mask.png')
    assert 'my_photo_mask.png' in headers['Content-Disposition']
    assert mask.shape == (96, 128) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    assert (mask[16:48, 16:48] == 255).all()

    status, state = client.post('/api/next')
    assert state['changed'] and state['object_index'] == 2
    client.post('/api/click', {'y': 60, 'x': 92, 'positive': True})
    _, labels = client.png('/api/labels.png')
    assert labels.shape == (96, 128)
    assert set(np.unique(labels)) == {0, 1, 2}

    status, state = client.post('/api/undo')
    assert state['changed'] and state['num_clicks'] == 0
    status, state = client.post('/api/undo')
    assert status == 200 and not state['changed']
    status, state = client.post('/api/reset')
    assert state['num_finished'] == 1
    status, _, body = client.request('/api/image')
    assert status == 200 and body[:2] == b'\xff\xd8'  # JPEG


def test_multipart_upload(client, image):
    boundary = 'xXxBOUNDARYxXx'
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image";'
            f' filename="cat.png"\r\nContent-Type: image/png\r\n\r\n'
            ).encode() + encode_png(image) + f'\r\n--{boundary}--\r\n'.encode()
    status, _, raw = client.request(
        '/api/upload', body,
        {'Content-Type': f'multipart/form-data; boundary={boundary}'})
    state = json.loads(raw)
    assert status == 200, state
    assert state['name'] == 'cat' and state['width'] == 128


def test_rejections_have_clear_messages(running_server, image):
    client = Client(running_server(max_upload_mb=0.01, max_pixels=5000))
    status, state = client.post('/api/click', {'y': 1, 'x': 1})
    assert status == 400 and 'no image loaded' in state['error']
    status, state = client.upload(b'%PDF-1.4 definitely not an image')
    assert status == 400 and 'not an image' in state['error']
    status, state = client.upload(bytes(20000))
    assert status == 413 and 'limit is 0.01 MB' in state['error']
    status, state = client.upload(encode_png(image))  # 128x96 > 5000 px
    assert status == 413 and 'megapixels' in state['error']
    small = encode_png(image[:50, :60])
    assert client.upload(small)[0] == 200
    for payload in ({'y': 1}, {'y': 1.5, 'x': 2}, {'y': 1, 'x': 2,
                                                   'positive': 'yes'}):
        status, state = client.post('/api/click', payload)
        assert status == 400 and 'click needs' in state['error'], payload
    status, state = client.post('/api/click', {'y': 50, 'x': 0})
    assert status == 400 and 'outside the 50x60 image' in state['error']
    status, _, raw = client.request('/api/click', b'{not json',
                                    {'Content-Type': 'application/json'})
    assert status == 400 and b'not JSON' in raw


def test_sessions_are_separate(running_server, image):
    server = running_server()
    alice, bob = Client(server), Client(server)
    assert alice.upload(encode_png(image))[0] == 200
    alice.post('/api/click', {'y': 32, 'x': 32, 'positive': True})
    status, state = bob.post('/api/click', {'y': 32, 'x': 32})
    assert status == 400 and 'no image loaded' in state['error']
    assert bob.upload(encode_png(image[:40]))[0] == 200
    _, alice_state = alice.post('/api/undo')
    assert alice_state['height'] == 96 and alice_state['num_clicks'] == 0


def test_examples(client):
    status, _, body = client.request('/api/examples')
    examples = json.loads(body)['examples']
    assert status == 200 and 'shapes.png' in examples
    status, state = client.post('/api/example', {'name': 'shapes.png'})
    assert status == 200 and state['name'] == 'shapes'
    assert (state['width'], state['height']) == (320, 240)
    status, state = client.post('/api/example', {'name': '../server.py'})
    assert status == 404 and 'no such example' in state['error']


def test_fifty_concurrent_clicks_on_one_session_all_answered(
        running_server, image):
    """A burst of 50 clicks: every connection gets its answer (the old
    standard-library server's listen backlog of 5 dropped some)."""
    import concurrent.futures
    client = Client(running_server())
    assert client.upload(encode_png(image))[0] == 200

    def click(i):
        return client.post('/api/click', {'y': 20 + i % 20, 'x': 20,
                                          'positive': True})[0]
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        statuses = list(pool.map(click, range(50)))
    assert statuses == [200] * 50
    _, state = client.post('/api/undo')
    assert state['num_clicks'] == 49  # all 50 clicks were applied


def test_state_without_image_is_not_an_error(client):
    status, _, body = client.request('/api/state')
    assert status == 200 and json.loads(body) == {'has_image': False}


def test_nested_json_and_short_body_are_4xx(running_server, image):
    """60 KB of '[' (a RecursionError in json) is a 400, not a 500; a body
    shorter than its Content-Length gets a 408 instead of holding a
    worker."""
    import socket
    import time
    server = running_server(body_timeout_s=1.5)
    client = Client(server)
    assert client.upload(encode_png(image))[0] == 200
    status, _, body = client.request('/api/click', b'[' * 60_000,
                                     {'Content-Type': 'application/json'})
    assert status == 400 and b'nested too deeply' in body
    start = time.monotonic()
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(b'POST /api/click HTTP/1.1\r\nHost: x\r\n'
                     b'Content-Type: application/json\r\n'
                     b'Content-Length: 100\r\n\r\n{"y": 1')
        sock.settimeout(20)
        answer = sock.recv(4096)
    assert answer.startswith(b'HTTP/1.1 408'), answer[:100]
    assert time.monotonic() - start < 10
    assert client.post('/api/click', {'y': 5, 'x': 5})[0] == 200
