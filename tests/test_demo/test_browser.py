"""End-to-end: the demo page in real headless Chromium (Playwright).

Uses Debian's ``/usr/bin/chromium`` (never ``playwright install``), serves
the page from a thread on a free port, uploads an image, clicks, checks the
mask and the downloaded PNG, and keeps a screenshot in ``test_artifacts/``.
"""
import os
import os.path as osp

import cv2
import numpy as np
import pytest

CHROMIUM = '/usr/bin/chromium'
# Playwright gives the browser a fresh temporary profile (--user-data-dir)
# itself; the rest keeps Chromium from reaching outside hosts.
CHROMIUM_ARGS = [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync'
]
DEBUG_CONFIG = osp.join('configs', '_base_', 'models',
                        'interformer_debug.py')
IMAGE_HW = (150, 200)
TIMEOUT_MS = 15000

if not osp.isfile(CHROMIUM):
    pytest.skip(f'{CHROMIUM} is missing (apt-get install chromium); the '
                'browser test needs it', allow_module_level=True)
sync_api = pytest.importorskip('playwright.sync_api',
                               reason='playwright is not installed')


@pytest.fixture(scope='module')
def predictor_factory(repo_root):
    """The real InterFormerPredictor on the tiny debug model (random
    weights), sharing one model between sessions like tools/demo.py."""
    import torch
    from mmengine.registry import DefaultScope

    from interformer.apis import InterFormerPredictor, init_model
    torch.manual_seed(0)
    # a _base_ model file sets no default_scope; mmseg's is needed to build
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = init_model(osp.join(repo_root, DEBUG_CONFIG))
    return lambda: InterFormerPredictor(model)


def _test_image() -> np.ndarray:
    """A BGR test image: textured background, a bright disk."""
    height, width = IMAGE_HW
    rng = np.random.default_rng(0)
    image = rng.integers(40, 90, (height, width, 3), dtype=np.uint8)
    cv2.circle(image, (120, 70), 40, (60, 200, 240), -1)
    return image


def test_demo_page_in_chromium(running_server, predictor_factory, repo_root,
                               tmp_path):
    server = running_server(predictor_factory)
    image_path = str(tmp_path / 'disk.png')
    cv2.imwrite(image_path, _test_image())
    artifacts = osp.join(repo_root, 'test_artifacts')
    os.makedirs(artifacts, exist_ok=True)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={'width': 1000, 'height': 800},
                                    accept_downloads=True)
            page.set_default_timeout(TIMEOUT_MS)
            console_errors = []
            page.on('console', lambda msg: console_errors.append(msg.text)
                    if msg.type == 'error' else None)
            page.on('pageerror', lambda err: console_errors.append(str(err)))
            page.goto(server.url)
            page.wait_for_selector('body[data-ready="true"]')
            # a fresh page loads without a failed request or a JS error
            assert console_errors == [], console_errors
            assert 'shapes.png' in page.inner_text('#example-select')

            # a non-image is rejected with the server's message
            page.set_input_files('#file-input', files=[{
                'name': 'notes.txt', 'mimeType': 'text/plain',
                'buffer': b'just some text'}])
            page.wait_for_selector('#error:not([hidden])')
            assert 'not an image' in page.inner_text('#error')
            assert page.is_hidden('#canvas')
            # the browser logs the refused upload's 400, nothing else
            assert len(console_errors) == 1 and '400' in console_errors[0]
            console_errors.clear()

            # upload, then a positive click in the disk
            page.set_input_files('#file-input', image_path)
            page.wait_for_selector('#canvas[data-clicks="0"]')
            assert page.is_hidden('#error')
            before = page.evaluate(_CANVAS_PIXELS)
            page.click('#canvas', position={'x': 120, 'y': 70})
            page.wait_for_selector('#canvas[data-clicks="1"]')
            area = int(page.get_attribute('#canvas', 'data-mask-area'))
            after = page.evaluate(_CANVAS_PIXELS)
            assert area > 0, 'the click produced an empty mask'
            assert before != after, 'the canvas did not change'
            latency = page.inner_text('#latency')
            assert latency.endswith(' ms') and float(latency[:-3]) > 0

            # a right click adds a negative click
            page.click('#canvas', position={'x': 10, 'y': 10},
                       button='right')
            page.wait_for_selector('#canvas[data-clicks="2"]')
            page.screenshot(path=osp.join(artifacts,
                                          'demo_screenshot.png'))
            print(f'per-click latency shown on the page: {latency}')

            with page.expect_download() as info:
                page.click('#download-mask')
            download = info.value
            assert download.suggested_filename == 'disk_mask.png'
            mask = cv2.imread(download.path(), cv2.IMREAD_UNCHANGED)
            assert mask.shape == IMAGE_HW
            assert int(page.get_attribute('#canvas', 'data-mask-area')) \
                == int((mask == 255).sum())

            page.click('#undo-button')
            page.wait_for_selector('#canvas[data-clicks="1"]')
            assert int(page.get_attribute('#canvas', 'data-mask-area')) \
                == area

            # finish the object; all objects download as one label PNG
            page.click('#next-button')
            page.wait_for_selector('#canvas[data-object="2"]')
            with page.expect_download() as info:
                page.click('#download-labels')
            labels = cv2.imread(info.value.path(), cv2.IMREAD_UNCHANGED)
            assert labels.shape == IMAGE_HW
            assert int((labels == 1).sum()) == area
            assert set(np.unique(labels)) == {0, 1}

            # too large: refused before uploading, with the limit shown
            page.set_input_files('#file-input', files=[{
                'name': 'huge.png', 'mimeType': 'image/png',
                'buffer': bytes(11 * 2**20)}])
            page.wait_for_selector('#error:not([hidden])')
            assert 'the limit is 10 MB' in page.inner_text('#error')
            assert console_errors == [], console_errors
        finally:
            browser.close()


# a cheap fingerprint of the canvas pixels
_CANVAS_PIXELS = """() => {
  const c = document.getElementById('canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 1) h = (h * 31 + d[i]) >>> 0;
  return [c.width, c.height, h];
}"""
