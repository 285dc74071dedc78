"""Per-click latency of decoding in the browser (issue 15, part 4).

Serves the client-decoding page of an ONNX export
(:func:`interformer.deploy.client_app.build_client_app`) and drives it in
headless Chromium (playwright): the page downloads ``decoder.onnx`` and the
image's decoder inputs once, then a robot user (the click test's
'official' protocol on the image's object mask) clicks on the canvas and
the page decodes every click in its web worker (onnxruntime-web, WASM, one
thread). The figures are the page's own measurements
(``performance.now()``): click to mask drawn, and the decoder run in the
worker. Also: the bytes the page received per image, the decoder file size,
and the requests the server saw during the clicks (must be none).
"""
import os
import os.path as osp
import platform
import tempfile
import time
from typing import Dict, List, Optional

import cv2
import numpy as np

from ..interaction import next_click
from .measure import load_average

__all__ = ['CHROMIUM', 'CHROMIUM_ARGS', 'run_browser_benchmark',
           'format_browser_table']

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update',
    '--disable-sync'
]
MAX_CLICKS_PER_OBJECT = 20
TIMEOUT_MS = 600000


def _stats(values: List[float]) -> Dict[str, float]:
    array = np.asarray(values, np.float64)
    return dict(median_ms=float(np.median(array)),
                p90_ms=float(np.percentile(array, 90)),
                min_ms=float(array.min()), count=int(array.size))


def _last_mask(page, shape) -> np.ndarray:
    flat = page.evaluate('window.interformerClient.masks.at(-1)')
    return np.asarray(flat, bool).reshape(shape)


def _click_loop(page, request_log, gt: np.ndarray, clicks_total: int,
                seed: int) -> List[dict]:
    """Robot clicks on the page; one record per click (in order)."""
    rng = np.random.default_rng(seed)
    records, clicks = [], []
    pred = np.zeros(gt.shape, bool)
    while len(records) < clicks_total:
        click = None
        if len(clicks) < MAX_CLICKS_PER_OBJECT:
            click = next_click(gt, pred, clicks, 'official', rng)
        if click is None:  # 20 clicks or a perfect mask: the next object
            page.click('#reset')
            clicks, pred = [], np.zeros(gt.shape, bool)
            continue
        clicks.append(click)
        done = page.evaluate('window.interformerClient.masks.length')
        before = len(request_log)
        box = page.locator('#view').bounding_box()  # text above may wrap
        page.mouse.click(box['x'] + 1 + click.x + 0.5,
                         box['y'] + 1 + click.y + 0.5,
                         button='left' if click.is_positive else 'right')
        page.wait_for_function(
            f'window.interformerClient.masks.length === {done + 1}')
        state = page.evaluate(
            '(s => ({ms: s.latencies.at(-1), worker: s.workerMs.at(-1), '
            'click: s.clicks.at(-1)}))(window.interformerClient)')
        pred = _last_mask(page, gt.shape)
        if abs(state['click'][0] - click.y) > 1 or \
                abs(state['click'][1] - click.x) > 1:
            raise RuntimeError(f'the page placed click {state["click"]} '
                               f'for ({click.y}, {click.x})')
        records.append(dict(click_ms=state['ms'], worker_ms=state['worker'],
                            requests=len(request_log) - before))
    return records


def run_browser_benchmark(model_dir: str, image: np.ndarray,
                          gt: np.ndarray, num_clicks: int = 12,
                          warmup: int = 2, chromium: str = CHROMIUM,
                          seed: int = 0,
                          threads: Optional[int] = None) -> dict:
    """Measure the page on one image.

    Args:
        model_dir: an ONNX export (``--fp16`` for the float16 features).
        image: (H, W, 3) uint8 RGB; gt: (H, W) object mask (1, 0, -1).
        num_clicks: clicks timed after ``warmup`` untimed ones.
        chromium: the Chromium binary.
        seed: the robot's tie-break seed.
        threads: WASM threads of the decoder (None: the page's default).

    Returns:
        dict: the settings, ``click`` / ``worker`` latency statistics (ms),
        bytes per image, requests during the clicks, load averages.
    """
    from playwright.sync_api import sync_playwright

    from ..deploy.client_app import build_client_app
    from ..deploy.model_info import load_model_info
    from ..serving.launch import ServerThread
    info = load_model_info(model_dir)
    height, width = image.shape[:2]
    load_before = load_average()
    app = build_client_app(model_dir)
    with tempfile.TemporaryDirectory(prefix='browser_bench_') as folder, \
            ServerThread(app) as server:
        path = osp.join(folder, 'image.png')
        cv2.imwrite(path, image[:, :, ::-1])
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium,
                                        args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=dict(
                width=max(width + 200, 1280), height=height + 400))
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(server.url + (f'?threads={threads}' if threads
                                    else ''))
            page.wait_for_function('window.interformerClient && '
                                   'window.interformerClient.ready')
            start = time.perf_counter()
            page.set_input_files('#file', path)
            page.wait_for_function('window.interformerClient.imageReady')
            image_s = time.perf_counter() - start
            records = _click_loop(page, app.fastapi.state.request_log, gt,
                                  warmup + num_clicks, seed)
            state = page.evaluate('(s => ({bytes: s.bytesPerImage, '
                                  'errors: s.errors, threads: '
                                  's.wasmThreads}))'
                                  '(window.interformerClient)')
            version = browser.version
            browser.close()
    if state['errors']:
        raise RuntimeError(f'the page reported {state["errors"]}')
    timed = records[warmup:]
    return dict(
        model_dir=model_dir,
        model_type=info.get('model_type'),
        fp16=bool(info.get('fp16')),
        image_shape=[height, width],
        canvas_shape=[-(-height // 32) * 32, -(-width // 32) * 32],
        warmup=warmup,
        click=_stats([r['click_ms'] for r in timed]),
        worker=_stats([r['worker_ms'] for r in timed]),
        first_click_ms=records[0]['click_ms'],
        requests_during_clicks=sum(r['requests'] for r in records),
        bytes_per_image=int(state['bytes']),
        decoder_bytes=osp.getsize(osp.join(model_dir, 'decoder.onnx')),
        encode_and_download_s=image_s,
        chromium=version,
        wasm_threads=int(state['threads']),
        cpu=platform.processor() or platform.machine(),
        cpu_count=os.cpu_count(),
        load_average_before=load_before,
        load_average_after=load_average())


def format_browser_table(result: dict,
                         title: Optional[str] = None) -> str:
    """A Markdown table of :func:`run_browser_benchmark`'s result."""
    click, worker = result['click'], result['worker']
    rows = [
        ('image (canvas)', f'{result["image_shape"][0]}x'
         f'{result["image_shape"][1]} ({result["canvas_shape"][0]}x'
         f'{result["canvas_shape"][1]})'),
        ('clicks timed (after warm-up)', f'{click["count"]} '
         f'({result["warmup"]})'),
        ('per click in the browser, click to mask drawn: median / p90',
         f'{click["median_ms"]:.0f} / {click["p90_ms"]:.0f} ms'),
        ('decoder in the web worker: median / p90',
         f'{worker["median_ms"]:.0f} / {worker["p90_ms"]:.0f} ms'),
        ('first click (WASM warm-up)', f'{result["first_click_ms"]:.0f} ms'),
        ('bytes per image (decoder inputs, '
         f'{"float16" if result["fp16"] else "float32"})',
         f'{result["bytes_per_image"] / 1e6:.2f} MB'),
        ('decoder.onnx (downloaded once)',
         f'{result["decoder_bytes"] / 2**20:.1f} MiB'),
        ('requests during the clicks', str(result['requests_during_clicks'])),
        ('Chromium / WASM threads', f'{result["chromium"]} / '
         f'{result["wasm_threads"]}'),
        ('load average before / after',
         f'{result["load_average_before"]:.2f} / '
         f'{result["load_average_after"]:.2f}'),
    ]
    lines = [f'### {title}'] if title else []
    lines += ['| what | value |', '|---|---|']
    lines += [f'| {k} | {v} |' for k, v in rows]
    return '\n'.join(lines)
