"""End to end against a real Label Studio (SQLite, loopback, temp folder).

Label Studio pins numpy < 2.3 and OpenCV 4.12, so it lives in its own venv
(``.venv-label-studio``, made by .ci/run; or set ``LABEL_STUDIO_BIN``) and
runs as a separate process. The test creates a project with KeyPointLabels
+ BrushLabels, imports a real image from the shared data folder, connects
the service's ML backend, asks Label Studio for an interactive prediction
through its API and checks the returned brush region decodes (with
label-studio-sdk's converter) to the service's own mask.
"""
import json
import os
import os.path as osp
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow
pytest.importorskip('label_studio_sdk',
                    reason='pip install --no-deps label-studio-sdk')

STARTUP_TIMEOUT_S = 600  # first start runs the SQLite migrations
LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <KeyPointLabels name="click" toName="image" smart="true">
    <Label value="Object" smart="true"/>
  </KeyPointLabels>
  <BrushLabels name="tag" toName="image">
    <Label value="Object"/>
  </BrushLabels>
</View>"""


def _label_studio_bin(repo_root):
    path = os.environ.get('LABEL_STUDIO_BIN') or osp.join(
        repo_root, '.venv-label-studio', 'bin', 'label-studio')
    if not osp.isfile(path):
        pytest.skip(f'Label Studio is not installed at {path} (.ci/run '
                    'makes .venv-label-studio; or set LABEL_STUDIO_BIN)')
    return path


def _shared_image(repo_root):
    """The first colour image found under the shared data folder."""
    for root in (osp.join(repo_root, 'shared', 'data'),
                 osp.join(repo_root, '..', 'shared', 'data'),
                 osp.join(repo_root, '..', '..', 'shared', 'data')):
        for folder, dirs, files in sorted(os.walk(root)):
            dirs.sort()
            for name in sorted(files):
                if name.lower().endswith(('.jpg', '.jpeg', '.png')):
                    path = osp.join(folder, name)
                    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
                    if image is not None and image.ndim == 3:
                        return path
    pytest.skip('no colour image in ../shared/data')


def _free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


class _Api:

    def __init__(self, base, token):
        self.base, self.token = base, token

    def call(self, method, path, payload=None, body=None, headers=None):
        headers = dict(headers or {})
        headers['Authorization'] = f'Token {self.token}'
        if payload is not None:
            body = json.dumps(payload).encode()
            headers['Content-Type'] = 'application/json'
        request = urllib.request.Request(self.base + path, body, headers,
                                         method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as resp:
                return resp.status, json.loads(resp.read() or b'null')
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()[:2000]


@pytest.fixture
def label_studio(repo_root, tmp_path):
    binary = _label_studio_bin(repo_root)
    port, token = _free_port(), secrets.token_hex(20)
    base = f'http://127.0.0.1:{port}'
    env = dict(os.environ, LABEL_STUDIO_BASE_DATA_DIR=str(tmp_path / 'ls'),
               DJANGO_DB='sqlite', LABEL_STUDIO_HOST=base,
               LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN='true',
               ML_BLOCK_LOCAL_IP='false', SSRF_PROTECTION_ENABLED='false',
               LATEST_VERSION_CHECK='false',
               LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK='true')
    log = open(tmp_path / 'label_studio.log', 'wb')
    process = subprocess.Popen(
        [binary, 'start', '--no-browser', '--host', base, '--port',
         str(port), '--username', 'test@example.com', '--password',
         secrets.token_hex(8), '--user-token', token],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        api = _Api(base, token)
        while True:
            if process.poll() is not None:
                pytest.fail('Label Studio exited: ' + (
                    tmp_path / 'label_studio.log').read_text()[-3000:])
            if time.monotonic() > deadline:
                pytest.fail('Label Studio did not start in time')
            try:
                if api.call('GET', '/api/projects')[0] == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(2)
        yield api
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _multipart(path):
    boundary = secrets.token_hex(12)
    with open(path, 'rb') as f:
        data = f.read()
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file";'
            f' filename="{osp.basename(path)}"\r\nContent-Type: '
            'application/octet-stream\r\n\r\n').encode() + data + \
        f'\r\n--{boundary}--\r\n'.encode()
    return body, {'Content-Type': f'multipart/form-data; boundary={boundary}'}


def test_interactive_prediction_through_label_studio(label_studio, service,
                                                     repo_root):
    from interformer.serving.engine import ObjectPrompt
    from interformer.serving.label_studio import sdk_brush
    server, _, engine = service
    api = label_studio
    status, project = api.call('POST', '/api/projects', {
        'title': 'InterFormer e2e', 'label_config': LABEL_CONFIG})
    assert status == 201, project
    image_path = _shared_image(repo_root)
    body, headers = _multipart(image_path)
    status, imported = api.call('POST', f'/api/projects/{project["id"]}/'
                                'import', body=body, headers=headers)
    assert status == 201, imported
    status, tasks = api.call('GET', f'/api/tasks?project={project["id"]}')
    assert status == 200, tasks
    task = (tasks['tasks'] if isinstance(tasks, dict) else tasks)[0]
    status, backend = api.call('POST', '/api/ml', {
        'url': server.url + 'label-studio', 'project': project['id'],
        'title': 'InterFormer', 'is_interactive': True})
    assert status == 201, backend

    image = cv2.imread(image_path, cv2.IMREAD_COLOR)
    height, width = image.shape[:2]
    y, x = height // 2, width // 2
    context = {'result': [{
        'original_width': width, 'original_height': height,
        'image_rotation': 0, 'from_name': 'click', 'to_name': 'image',
        'type': 'keypointlabels', 'is_positive': True,
        'value': {'x': 100.0 * (x + 0.5) / width,
                  'y': 100.0 * (y + 0.5) / height, 'width': 1.0,
                  'keypointlabels': ['Object']}}]}
    start = time.perf_counter()
    status, answer = api.call(
        'POST', f'/api/ml/{backend["id"]}/interactive-annotating',
        {'task': task['id'], 'context': context})
    took = time.perf_counter() - start
    assert status == 200 and 'errors' not in answer, answer
    [region] = [r for r in answer['data']['result']
                if r['type'] == 'brushlabels']
    assert region['from_name'] == 'tag' and region['to_name'] == 'image'
    rle = region['value']['rle']
    mask = np.reshape(sdk_brush().decode_rle(rle),
                      (height, width, 4))[:, :, 3] > 0
    with open(image_path, 'rb') as f:
        encoded, hit = engine.encode_bytes(f.read())
    assert hit  # Label Studio's request encoded the same bytes
    [expected] = engine.segment(encoded, [ObjectPrompt([(y, x, True)])])
    np.testing.assert_array_equal(mask, expected)
    print(f'Label Studio interactive prediction: {took * 1000:.0f} ms '
          f'round trip, mask area {int(mask.sum())} px of {width}x{height}')
