"""A bounded load test of the service: N annotators clicking on M images.

Starts ``tools/serve.py`` as a subprocess on a free loopback port, then runs
N client threads; each annotator walks all M images (in its own order) and
clicks K times per image the way Label Studio and CVAT do: every click
resends the image and all clicks (``POST /v1/segment`` with ``image``), so
the feature cache decides whether a click costs an encode. Stops by itself
(after the clicks or ``time_limit_s``) and always stops the server.
"""
import base64
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional

import cv2
import numpy as np

__all__ = ['find_images', 'run_load_test', 'format_report']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def find_images(root: str, count: int, max_side: int) -> List[bytes]:
    """PNG bytes of the first ``count`` colour images under ``root``
    (walked in sorted order; grey masks are skipped), resized so the
    longer side is ``max_side``."""
    found = []
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            image = cv2.imread(osp.join(folder, name), cv2.IMREAD_UNCHANGED)
            if image is None or image.ndim != 3:
                continue
            scale = max_side / max(image.shape[:2])
            image = cv2.resize(image[:, :, :3], None, fx=scale, fy=scale,
                               interpolation=cv2.INTER_AREA)
            found.append(cv2.imencode('.png', image)[1].tobytes())
            if len(found) == count:
                return found
    if not found:
        raise FileNotFoundError(f'no colour images under {root}')
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def _metrics(base: str) -> Dict[str, float]:
    text = _get(base + '/metrics').decode()
    return {k: float(v) for k, v in (line.rsplit(' ', 1)
                                     for line in text.splitlines()
                                     if line and not line.startswith('#'))}


def run_load_test(config: str, checkpoint: str, annotators: int = 4,
                  images: Optional[List[bytes]] = None, clicks: int = 5,
                  cache_mb: float = 256, time_limit_s: float = 300,
                  precision: str = 'fp32', seed: int = 0,
                  repo_root: str = '.') -> Dict:
    """Run the load test; returns the report (see :func:`format_report`)."""
    port = _free_port()
    base = f'http://127.0.0.1:{port}'
    server = subprocess.Popen(
        [sys.executable, osp.join(repo_root, 'tools', 'serve.py'), config,
         checkpoint, '--host', '127.0.0.1', '--port', str(port),
         '--cache-mb', str(cache_mb), '--precision', precision,
         '--no-demo'], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                _get(base + '/health', 1.0)
                break
            except (urllib.error.URLError, OSError):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError('the server did not start: ' + (
                        server.stderr.read().decode()[-2000:]
                        if server.poll() is not None else 'timeout'))
                time.sleep(0.3)
        payloads = [base64.b64encode(data).decode() for data in images]
        shapes = [cv2.imdecode(np.frombuffer(d, np.uint8),
                               cv2.IMREAD_COLOR).shape[:2] for d in images]
        first, later, errors = [], [], []
        lock = threading.Lock()
        stop_at = time.monotonic() + time_limit_s

        def annotate(worker: int) -> None:
            rng = np.random.default_rng(seed + worker)
            for index in rng.permutation(len(images)):
                height, width = shapes[index]
                done: List[list] = []
                for k in range(clicks):
                    if time.monotonic() > stop_at:
                        return
                    y = int(rng.integers(height // 4, 3 * height // 4))
                    x = int(rng.integers(width // 4, 3 * width // 4))
                    done.append([y, x, k % 2 == 0])
                    body = json.dumps({'image': payloads[index],
                                       'objects': [{'clicks': done}]})
                    request = urllib.request.Request(
                        base + '/v1/segment', body.encode(),
                        {'Content-Type': 'application/json'})
                    start = time.perf_counter()
                    try:
                        with urllib.request.urlopen(request,
                                                    timeout=120) as resp:
                            resp.read()
                    except (urllib.error.URLError, OSError) as err:
                        with lock:
                            errors.append(repr(err))
                        continue
                    took = (time.perf_counter() - start) * 1000
                    with lock:
                        (first if k == 0 else later).append(took)

        start = time.monotonic()
        threads = [threading.Thread(target=annotate, args=(i, ))
                   for i in range(annotators)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.monotonic() - start
        metrics = _metrics(base)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    every = first + later
    hits = metrics['interformer_cache_hits_total']
    misses = metrics['interformer_cache_misses_total']
    encodes = metrics['interformer_encodes_total']

    def pct(values, q):
        return float(np.percentile(values, q)) if values else float('nan')
    return dict(
        annotators=annotators, images=len(images), clicks_per_image=clicks,
        cache_mb=cache_mb, requests=len(every), errors=len(errors),
        error_samples=errors[:3], wall_s=wall,
        click_p50_ms=pct(every, 50), click_p99_ms=pct(every, 99),
        later_click_p50_ms=pct(later, 50), later_click_p99_ms=pct(later, 99),
        first_click_p50_ms=pct(first, 50), first_click_p99_ms=pct(first, 99),
        encodes=int(encodes), encodes_per_s=encodes / wall,
        encode_ms_mean=1000 * metrics['interformer_encode_seconds_total']
        / max(encodes, 1),
        cache_hit_rate=hits / max(hits + misses, 1),
        cache_evictions=int(metrics['interformer_cache_evictions_total']),
        cache_mib=metrics['interformer_cache_bytes'] / 2**20,
        rss_mib=metrics['interformer_resident_memory_bytes'] / 2**20)


def format_report(report: Dict) -> str:
    """A short human-readable summary of :func:`run_load_test`."""
    r = report
    return '\n'.join([
        f"{r['annotators']} annotators x {r['images']} images x "
        f"{r['clicks_per_image']} clicks, --cache-mb {r['cache_mb']:g}: "
        f"{r['requests']} requests in {r['wall_s']:.1f} s, "
        f"{r['errors']} errors",
        f"per-click latency p50 {r['click_p50_ms']:.0f} ms, p99 "
        f"{r['click_p99_ms']:.0f} ms (clicks 2+: p50 "
        f"{r['later_click_p50_ms']:.0f} / p99 "
        f"{r['later_click_p99_ms']:.0f} ms; first clicks: p50 "
        f"{r['first_click_p50_ms']:.0f} / p99 "
        f"{r['first_click_p99_ms']:.0f} ms)",
        f"encodes {r['encodes']} ({r['encodes_per_s']:.2f}/s, "
        f"{r['encode_ms_mean']:.0f} ms each), cache hit rate "
        f"{100 * r['cache_hit_rate']:.1f} %, evictions "
        f"{r['cache_evictions']}",
        f"memory: cache {r['cache_mib']:.1f} MiB of "
        f"{r['cache_mb']:g}, process RSS {r['rss_mib']:.0f} MiB",
    ])
