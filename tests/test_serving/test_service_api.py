"""The service over HTTP: encode, segment (PNG / RLE / polygons), metrics,
OpenAPI, and every kind of bad request answered with a 4xx."""
import base64
import concurrent.futures
import json
import socket
import time

import cv2
import numpy as np
import pytest

from interformer.serving.outputs import rle_to_mask


def test_encode_segment_outputs_and_metrics(service, sample_image,
                                            png_bytes):
    _, client, engine = service
    data = png_bytes(sample_image())
    status, info = client.post_image(data)
    assert status == 200 and info['cached'] is False
    assert (info['height'], info['width']) == (150, 200)
    assert client.post_image(data)[1]['cached'] is True
    status, answer = client.post_json('/v1/segment', {
        'image_id': info['image_id'],
        'objects': [{'clicks': [[70, 120, True]]},
                    {'clicks': [[20, 30, True], [25, 35, False]]}],
        'outputs': ['png', 'rle', 'polygons'], 'polygon_tolerance': 0})
    assert status == 200, answer
    assert len(answer['objects']) == 2
    for obj in answer['objects']:
        rle_mask = rle_to_mask(obj['rle'])
        png = cv2.imdecode(np.frombuffer(base64.b64decode(obj['png']),
                                         np.uint8), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(rle_mask, png > 0)
        assert obj['area'] == int(rle_mask.sum())
        if obj['area']:
            filled = np.zeros((150, 200), np.uint8)
            for poly in obj['polygons']:
                pts = np.array([[x, y] for y, x in poly], np.int32)
                cv2.fillPoly(filled, [pts], 1)
            # polygons of (y, x) points cover the mask (contour pixels
            # included), at tolerance 0 up to the boundary
            inter = (filled.astype(bool) & rle_mask).sum()
            assert inter >= 0.9 * rle_mask.sum()
    # the same request with the image inline (stateless) is a cache hit
    status, again = client.post_json('/v1/segment', {
        'image': base64.b64encode(data).decode(),
        'objects': [{'clicks': [[70, 120, True]]}]})
    assert status == 200 and again['cached'] is True
    assert again['objects'][0]['rle'] == answer['objects'][0]['rle']
    assert engine.encodes == 1
    status, _, text = client.request('/metrics')
    metrics = dict(line.rsplit(' ', 1) for line in text.decode().splitlines()
                   if not line.startswith('#'))
    assert status == 200 and int(metrics['interformer_encodes_total']) == 1
    assert int(metrics['interformer_cache_hits_total']) >= 2
    assert int(metrics['interformer_cache_misses_total']) == 1
    assert '# TYPE interformer_cache_hits_total counter' in text.decode()


def test_start_mask_and_box_over_http(service, sample_image, png_bytes):
    _, client, _ = service
    info = client.post_image(png_bytes(sample_image()))[1]
    _, first = client.post_json('/v1/segment', {
        'image_id': info['image_id'],
        'objects': [{'clicks': [[70, 120, True]]}]})
    status, answer = client.post_json('/v1/segment', {
        'image_id': info['image_id'], 'outputs': ['rle'],
        'objects': [{'clicks': [[10, 10, False]],
                     'mask_rle': first['objects'][0]['rle']},
                    {'box': [40, 90, 100, 150]}]})
    assert status == 200, answer
    boxed = rle_to_mask(answer['objects'][1]['rle'])
    assert not boxed[:40].any() and not boxed[:, 150:].any()


def test_openapi_page(service):
    _, client, _ = service
    status, _, body = client.request('/openapi.json')
    spec = json.loads(body)
    assert status == 200
    assert {'/v1/images', '/v1/segment', '/metrics'} <= set(spec['paths'])
    status, _, body = client.request('/docs')
    assert status == 200 and b'swagger' in body.lower()


def test_bad_requests_get_clear_4xx(service, sample_image, png_bytes):
    _, client, _ = service
    info = client.post_image(png_bytes(sample_image()))[1]
    cases = [
        ({'image_id': 'f' * 64, 'objects': [{'clicks': [[1, 1, True]]}]},
         404, 'unknown image_id'),
        ({'image_id': info['image_id'],
          'objects': [{'clicks': [[150, 0, True]]}]}, 400,
         'outside the 150x200 image'),
        ({'image_id': info['image_id'],
          'objects': [{'clicks': [[1, 1, 'yes']]}]}, 422, 'objects'),
        ({'image_id': info['image_id'], 'objects': [{}]}, 400,
         'at least one click'),
        ({'image_id': info['image_id'], 'objects': []}, 400, 'objects'),
        ({'objects': [{'clicks': [[1, 1, True]]}]}, 400, 'exactly one'),
        ({'image': 'not base64!', 'objects': [{'clicks': [[1, 1, True]]}]},
         400, 'base64'),
        ({'image': base64.b64encode(b'text').decode(),
          'objects': [{'clicks': [[1, 1, True]]}]}, 400, 'not an image'),
    ]
    for payload, status, words in cases:
        got, answer = client.post_json('/v1/segment', payload)
        assert got == status and words in answer['error'], (payload, answer)
    status, answer = client.post_image(b'%PDF-1.4 not an image')
    assert status == 400 and 'not an image' in answer['error']
    status, _, body = client.request(
        '/v1/segment', b'{not json', {'Content-Type': 'application/json'})
    assert 400 <= status < 500, body
    status, answer = client.post_image(bytes(3 * 2**20))
    assert status == 413 and 'limit' in answer['error']


def test_deeply_nested_json_is_a_4xx(service):
    server, client, _ = service
    for path in ('/v1/segment', '/label-studio/predict'):
        status, _, body = client.request(
            path, b'[' * 60_000, {'Content-Type': 'application/json'})
        assert 400 <= status < 500, (path, status, body[:200])
    assert client.request('/health')[0] == 200


def test_short_body_does_not_hold_a_worker(service):
    server, client, _ = service
    start = time.monotonic()
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(b'POST /v1/segment HTTP/1.1\r\nHost: x\r\n'
                     b'Content-Type: application/json\r\n'
                     b'Content-Length: 1000\r\n\r\n{"objects": ')
        sock.settimeout(10)
        answer = sock.recv(4096)
    assert answer.startswith(b'HTTP/1.1 408'), answer[:100]
    assert time.monotonic() - start < 5  # body_timeout_s = 1.5
    assert client.request('/health')[0] == 200


def _content_length(answer: bytes) -> int:
    for line in answer.split(b'\r\n\r\n', 1)[0].split(b'\r\n'):
        name, _, value = line.partition(b':')
        if name.strip().lower() == b'content-length':
            return int(value)
    return 0


@pytest.mark.parametrize('megabytes', [3, 6])
def test_client_sending_a_refused_body_whole_still_gets_the_413(
        service, megabytes):
    """A client that writes its whole (too large) body before reading, as
    urllib and most HTTP libraries do, gets the 413: the server reads and
    drops the body instead of closing on unread data (a TCP reset or a
    broken pipe). 3 MB: refused by the upload route (limit 2 MB); 6 MB:
    by the app's body guard (limit 2 MB in base64 JSON + 1 MB)."""
    server, client, _ = service
    body = bytes(megabytes * 2**20)
    for _ in range(3):
        with socket.create_connection((server.host, server.port)) as sock:
            sock.settimeout(20)
            sock.sendall(b'POST /v1/images HTTP/1.1\r\nHost: x\r\n'
                         b'Content-Type: application/octet-stream\r\n'
                         b'Content-Length: %d\r\n\r\n' % len(body))
            sock.sendall(body)
            answer = b''
            while b'\r\n\r\n' not in answer or len(
                    answer.split(b'\r\n\r\n', 1)[1]) < _content_length(
                        answer):
                chunk = sock.recv(4096)
                assert chunk, answer  # closed before the whole answer
                answer += chunk
        assert answer.startswith(b'HTTP/1.1 413'), answer[:100]
        assert b'limit' in answer
    assert client.request('/health')[0] == 200


def test_concurrent_requests_on_one_image(service, sample_image, png_bytes):
    _, client, engine = service
    data = png_bytes(sample_image())
    info = client.post_image(data)[1]

    def click(i):
        return client.post_json('/v1/segment', {
            'image_id': info['image_id'],
            'objects': [{'clicks': [[70, 120, True],
                                    [10 + i % 5, 10, False]]}]})
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(click, range(40)))
    assert all(status == 200 for status, _ in answers)
    by_click = {}
    for i, (_, answer) in enumerate(answers):
        by_click.setdefault(i % 5, set()).add(
            answer['objects'][0]['rle']['counts'])
    assert all(len(v) == 1 for v in by_click.values())  # deterministic
    assert engine.encodes == 1
