"""Label Studio ML backend on the service's engine (mounted at
``/label-studio``; see docs/label_studio.md).

Contract (Label Studio's ML backend API): ``GET /health``, ``POST /setup``
(``project``, ``schema``, ``hostname``, ``access_token``) and ``POST
/predict`` (``tasks``, ``label_config``, ``params.context`` or ``context``)
answering ``{"results": [{"result": [...], "score", "model_version"}]}``,
one entry per task. Interactive clicks come as ``keypointlabels`` items
(``x``, ``y`` in percent of ``original_width`` / ``original_height``,
``is_positive``), boxes as ``rectanglelabels`` (``x``, ``y``, ``width``,
``height`` in percent). The answer is one ``brushlabels`` region in Label
Studio's brush RLE, encoded by ``label_studio_sdk``'s converter
(``converter/brush.py``, loaded on its own so the SDK's pins on numpy and
OpenCV do not bind this environment), plus ``polygonlabels`` when the
labeling config has a PolygonLabels tag.
"""
import base64
import binascii
import importlib.util
import os
import os.path as osp
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Tuple

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .engine import ClickEngine, ObjectPrompt
from .guard import parse_json
from .outputs import mask_to_polygons

__all__ = ['build_label_studio_router', 'sdk_brush', 'parse_label_config',
           'MODEL_VERSION']

MODEL_VERSION = 'interformer-clicks-1'
_FETCH_TIMEOUT_S = 30
_brush_module = None


def sdk_brush():
    """``label_studio_sdk.converter.brush`` (mask2rle / decode_rle).

    Raises:
        HTTPException: 503 when label-studio-sdk is not installed.
    """
    global _brush_module
    if _brush_module is None:
        spec = importlib.util.find_spec('label_studio_sdk')
        if spec is None or not spec.submodule_search_locations:
            raise HTTPException(
                503, 'label-studio-sdk is not installed: pip install '
                '--no-deps label-studio-sdk==2.1.2 (see '
                'docs/label_studio.md)')
        path = osp.join(spec.submodule_search_locations[0], 'converter',
                        'brush.py')
        brush_spec = importlib.util.spec_from_file_location(
            'interformer_label_studio_brush', path)
        module = importlib.util.module_from_spec(brush_spec)
        brush_spec.loader.exec_module(module)
        _brush_module = module
    return _brush_module


def parse_label_config(xml: str) -> Dict[str, Optional[str]]:
    """Names used by the answer, from a labeling config.

    Returns:
        dict: ``image`` (Image tag name), ``image_key`` (task data key),
        ``brush`` / ``brush_label`` (BrushLabels name, first label),
        ``polygon`` / ``polygon_label`` (PolygonLabels, optional).
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as err:
        raise HTTPException(400, f'label_config is not XML: {err}') from None
    names: Dict[str, Optional[str]] = dict(
        image=None, image_key=None, brush=None, brush_label=None,
        polygon=None, polygon_label=None)
    for tag in root.iter():
        if tag.tag == 'Image' and names['image'] is None:
            names['image'] = tag.get('name')
            names['image_key'] = (tag.get('value') or '').lstrip('$')
        elif tag.tag in ('BrushLabels', 'PolygonLabels'):
            kind = 'brush' if tag.tag == 'BrushLabels' else 'polygon'
            if names[kind] is None:
                names[kind] = tag.get('name')
                label = tag.find('Label')
                names[f'{kind}_label'] = (None if label is None else
                                          label.get('value'))
    if names['image'] is None or names['brush'] is None:
        raise HTTPException(400, 'the labeling config needs an Image and a '
                            'BrushLabels tag')
    return names


def _prompt(context: dict) -> Tuple[List[tuple], Optional[tuple],
                                    Optional[str], Tuple[int, int]]:
    """Clicks (y, x, positive), box, label and (H, W) from a context."""
    clicks, box, label, size = [], None, None, None
    for item in context.get('result') or []:
        kind = item.get('type')
        value = item.get('value') or {}
        try:
            height = int(item['original_height'])
            width = int(item['original_width'])
        except (KeyError, TypeError, ValueError):
            raise HTTPException(400, f'context result {kind} needs '
                                'original_width and original_height') \
                from None
        size = (height, width)
        try:
            px = float(value['x']) * width / 100.0
            py = float(value['y']) * height / 100.0
        except (KeyError, TypeError, ValueError):
            raise HTTPException(400, f'context result {kind} needs x and y '
                                'in percent') from None
        if kind == 'keypointlabels':
            y = min(max(int(py), 0), height - 1)
            x = min(max(int(px), 0), width - 1)
            clicks.append((y, x, bool(item.get('is_positive', True))))
            labels = value.get('keypointlabels') or []
            label = label or (labels[0] if labels else None)
        elif kind == 'rectanglelabels':
            bw = float(value.get('width', 0)) * width / 100.0
            bh = float(value.get('height', 0)) * height / 100.0
            box = (int(py), int(px), int(np.ceil(py + bh)),
                   int(np.ceil(px + bw)))
            labels = value.get('rectanglelabels') or []
            label = label or (labels[0] if labels else None)
    return clicks, box, label, size


class _LabelStudioBackend:

    def __init__(self, engine: ClickEngine, max_bytes: int,
                 max_pixels: int) -> None:
        self.engine = engine
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.hostname = os.environ.get('LABEL_STUDIO_URL', '')
        self.token = os.environ.get('LABEL_STUDIO_API_KEY', '')

    def fetch(self, url: str) -> bytes:
        """Image bytes of a task: data URI, absolute or LS-relative URL."""
        if url.startswith('data:'):
            try:
                return base64.b64decode(url.split(',', 1)[1])
            except (IndexError, binascii.Error):
                raise HTTPException(400, 'bad data: URI in the task') \
                    from None
        headers = {}
        if url.startswith('/'):
            if not self.hostname:
                raise HTTPException(
                    400, f'cannot fetch {url}: Label Studio did not send '
                    'its hostname in /setup; set LABEL_STUDIO_URL')
            url = self.hostname.rstrip('/') + url
        if self.token and self.hostname and url.startswith(
                self.hostname.rstrip('/')):
            headers['Authorization'] = f'Token {self.token}'
        if not url.startswith(('http://', 'https://')):
            raise HTTPException(400, f'cannot fetch task image {url!r}')
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request,
                                        timeout=_FETCH_TIMEOUT_S) as resp:
                data = resp.read(self.max_bytes + 1)
        except (urllib.error.URLError, OSError) as err:
            raise HTTPException(502, f'cannot fetch task image {url}: '
                                f'{err}') from None
        if len(data) > self.max_bytes:
            raise HTTPException(413, f'task image {url} is over the upload '
                                'limit')
        return data

    def predict_task(self, task: dict, names: dict,
                     context: dict) -> dict:
        clicks, box, label, size = _prompt(context)
        if not clicks and box is None:
            return {'result': [], 'score': 0.0,
                    'model_version': MODEL_VERSION}
        url = (task.get('data') or {}).get(names['image_key'])
        if not isinstance(url, str):
            raise HTTPException(400, f'task has no image under data.'
                                f'{names["image_key"]}')
        encoded, _ = self.engine.encode_bytes(self.fetch(url),
                                              self.max_pixels)
        height, width = encoded.image_shape
        if size != (height, width):
            raise HTTPException(400, f'the context is for a {size[1]}x'
                                f'{size[0]} image; the task image is '
                                f'{width}x{height}')
        [mask] = self.engine.segment(encoded, [ObjectPrompt(clicks,
                                                            box=box)])
        brush_label = label or names['brush_label']
        common = dict(to_name=names['image'], original_width=width,
                      original_height=height, image_rotation=0,
                      readonly=False)
        rle = sdk_brush().mask2rle(mask.astype(np.uint8) * 255)
        result = [dict(common, id='interformer-brush',
                       from_name=names['brush'], type='brushlabels',
                       value={'format': 'rle', 'rle': [int(v) for v in rle],
                              'brushlabels': [brush_label]})]
        if names['polygon'] is not None:
            polygons = mask_to_polygons(mask, tolerance=1.0)
            if polygons:
                points = [[100.0 * x / width, 100.0 * y / height]
                          for y, x in polygons[0]]
                result.append(dict(
                    common, id='interformer-polygon',
                    from_name=names['polygon'], type='polygonlabels',
                    value={'points': points, 'closed': True,
                           'polygonlabels': [label
                                             or names['polygon_label']]}))
        return {'result': result, 'score': 1.0,
                'model_version': MODEL_VERSION}


def build_label_studio_router(engine: ClickEngine, config) -> APIRouter:
    """Routes of the ML backend (mount with ``prefix='/label-studio'``)."""
    backend = _LabelStudioBackend(engine, int(config.max_upload_mb * 2**20),
                                  config.max_pixels)
    router = APIRouter(tags=['label-studio'])
    schemas: Dict[str, str] = {}

    @router.get('/health')
    @router.get('/')
    def health() -> dict:
        return {'status': 'UP', 'model_class': 'InterFormer',
                'model_version': MODEL_VERSION}

    @router.post('/setup')
    async def setup(request: Request) -> dict:
        data = parse_json(await request.body())
        if not isinstance(data, dict):
            raise HTTPException(400, '/setup needs a JSON object')
        if data.get('schema'):
            parse_label_config(data['schema'])  # fail early, with reason
            schemas[str(data.get('project'))] = data['schema']
        backend.hostname = (os.environ.get('LABEL_STUDIO_URL')
                            or data.get('hostname') or backend.hostname)
        backend.token = (os.environ.get('LABEL_STUDIO_API_KEY')
                         or data.get('access_token') or backend.token)
        return {'model_version': MODEL_VERSION}

    @router.post('/predict')
    async def predict(request: Request) -> dict:
        data = parse_json(await request.body())
        if not isinstance(data, dict) or not isinstance(
                data.get('tasks'), list):
            raise HTTPException(400, '/predict needs {"tasks": [...]}')
        params = data.get('params') or {}
        context = data.get('context') or params.get('context') or {}
        schema = data.get('label_config') or schemas.get(
            str(data.get('project')))
        if not schema:
            raise HTTPException(400, 'no label_config in the request and no '
                                '/setup for this project')
        names = parse_label_config(schema)

        def run() -> dict:
            return {'results': [backend.predict_task(t, names, context)
                                for t in data['tasks']],
                    'model_version': MODEL_VERSION}
        return await run_in_threadpool(run)

    return router
