"""Decoding in the browser (issue 15, part 4), in headless Chromium: the
page downloads decoder.onnx and the image's features once, every click is
decoded in a web worker (onnxruntime-web) with the JavaScript reference-label
rules; masks match server-side decoding (IoU >= 0.99 at every click), no
request per click, per-click latency shown on the page. Served two ways:
tools/deploy/serve_client.py's torch-free app (encoder.onnx encodes) and
tools/demo.py CONFIG CHECKPOINT --client-decoding (the PyTorch model
encodes)."""
import argparse
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from deploy_utils import build_tiny, tiny_config

from interformer.benchmark.browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    format_browser_table,
    run_browser_benchmark,
)
from interformer.deploy import OnnxPredictor
from interformer.deploy.client_app import build_client_app
from interformer.deploy.client_routes import ORT_DIR
from interformer.deploy.export import export_onnx
from interformer.serving.cli import build_app
from interformer.serving.launch import ServerThread

TIMEOUT_MS = 120000
# (y, x, positive) in image pixels
CLICKS = [(75, 120, True), (20, 30, False), (100, 140, True),
          (70, 60, False), (40, 120, True)]

if not osp.isfile(CHROMIUM):
    pytest.skip(f'{CHROMIUM} is missing', allow_module_level=True)
if not osp.isfile(osp.join(ORT_DIR, 'ort.wasm.min.mjs')):
    pytest.skip('onnxruntime-web is not installed (npm ci in '
                'interformer/deploy/web)', allow_module_level=True)
sync_api = pytest.importorskip('playwright.sync_api')


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """(export folder, config file, checkpoint) of one tiny Light model."""
    root = tmp_path_factory.mktemp('client_onnx')
    model = build_tiny('light', seed=1)
    with torch.no_grad():  # confident logits, as a trained model has: a
        # random model's margins are ~0 where WASM and CPU rounding differ
        model.decode_head.conv_seg.weight.mul_(100)
        model.decode_head.conv_seg.bias.mul_(100)
    model_dir = str(root / 'onnx')
    export_onnx(model, model_dir, fp16=True)
    config = str(root / 'tiny_light.py')
    tiny_config('light').dump(config)
    checkpoint = str(root / 'tiny_light.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    return model_dir, config, checkpoint


@pytest.fixture(params=['serve_client', 'demo'])
def server(request, exported):
    model_dir, config, checkpoint = exported
    if request.param == 'serve_client':
        app = build_client_app(model_dir, num_threads=1)
    else:
        app = build_app(argparse.Namespace(
            config=config, checkpoint=checkpoint, device='cpu',
            precision='fp32', max_upload_mb=10, max_pixels=2**22,
            features=None, client_decoding=model_dir), cache_mb=16)
    with ServerThread(app) as thread:
        thread.model_dir = model_dir
        thread.request_log = app.fastapi.state.request_log
        # the demo's page decodes on 2 WASM threads (cross-origin isolated)
        thread.threads = 1 if request.param == 'serve_client' else min(
            2, os.cpu_count() or 1)
        yield thread


def _image():
    rng = np.random.default_rng(0)
    image = rng.integers(40, 90, (150, 200, 3), dtype=np.uint8)
    cv2.circle(image, (120, 75), 40, (60, 200, 240), -1)
    return image  # BGR


def _iou(a, b):
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def test_clicks_decoded_in_the_browser(server, tmp_path):
    image = _image()
    path = str(tmp_path / 'image.png')
    cv2.imwrite(path, image)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors = []
        page.on('pageerror', lambda err: errors.append(str(err)))
        page.goto(f'{server.url}?threads={server.threads}')
        page.wait_for_function('window.interformerClient && '
                               'window.interformerClient.ready')
        assert page.evaluate('crossOriginIsolated')
        assert page.evaluate('window.interformerClient.wasmThreads') == \
            server.threads
        page.set_input_files('#file', path)
        page.wait_for_function('window.interformerClient.imageReady')
        requests_before = list(server.request_log)
        assert page.evaluate('window.interformerClient.featuresSource') \
            == 'encoder'
        for k, (y, x, positive) in enumerate(CLICKS):
            box = page.locator('#view').bounding_box()
            # +1: the canvas' 1px border
            page.mouse.click(box['x'] + 1 + x + 0.5, box['y'] + 1 + y + 0.5,
                             button='left' if positive else 'right')
            try:
                page.wait_for_function(
                    f'window.interformerClient.masks.length === {k + 1}')
            except sync_api.TimeoutError:
                raise AssertionError(
                    f'click {k}: no mask; page errors {errors}, status '
                    f'{page.inner_text("#status")!r}, client errors '
                    f'{page.evaluate("window.interformerClient.errors")}'
                ) from None
        state = page.evaluate('window.interformerClient')
        latency_text = page.inner_text('#latency')
        os.makedirs('test_artifacts', exist_ok=True)
        page.screenshot(path=osp.join('test_artifacts',
                                      'client_decoding.png'))
        browser.close()
    assert not errors and not state['errors'], (errors, state['errors'])
    assert list(server.request_log) == requests_before, \
        'a click made a request'
    assert ('POST', '/api/encode') in requests_before
    assert sum(1 for r in requests_before
               if r[1] == '/model/decoder.onnx') == 1
    assert 'ms in the browser' in latency_text

    predictor = OnnxPredictor(server.model_dir, num_threads=1)
    predictor.set_image(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    # the page maps the mouse to pixels itself (within a pixel of ours)
    placed = [tuple(c) for c in state['clicks']]
    for (y, x, positive), (py, px, ppos) in zip(CLICKS, placed):
        assert abs(py - y) <= 1 and abs(px - x) <= 1 and ppos == positive
    for k, (y, x, positive) in enumerate(placed):
        predictor.add_click(y, x, positive)
        want = predictor.predict().mask
        got = np.array(state['masks'][k], bool).reshape(want.shape)
        assert _iou(got, want) >= 0.99, f'click {k}: IoU {_iou(got, want)}'
    assert 0 < want.sum() < want.size
    print(f'browser latency per click (ms): {state["latencies"]}, '
          f'decoder in the worker: {state["workerMs"]}, bytes per image: '
          f'{state["bytesPerImage"]}')


def test_browser_benchmark_runs(exported):
    """tools/deploy/benchmark_browser.py's measurement (not timed here)."""
    image = _image()[:, :, ::-1].copy()
    gt = np.zeros(image.shape[:2], np.int8)
    cv2.circle(gt, (120, 75), 40, 1, -1)
    result = run_browser_benchmark(exported[0], image, gt, num_clicks=2,
                                   warmup=1)
    assert result['requests_during_clicks'] == 0
    assert result['click']['count'] == 2 and result['click']['median_ms'] > 0
    assert result['bytes_per_image'] > 0 and result['fp16']
    assert '| requests during the clicks | 0 |' in format_browser_table(
        result)
