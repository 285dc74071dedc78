"""The service's ASGI app: JSON API, metrics, Label Studio backend, demo.

=============================  ==============================================
``POST /v1/images``            image bytes -> ``image_id`` (content hash),
                               encoded once into the feature cache
``GET  /v1/images/{image_id}``  is it cached? (404 if not)
``POST /v1/segment``           objects (clicks ``[y, x, positive]``, start
                               mask, box) of one image -> PNG / COCO RLE /
                               polygons, all objects in one decoder batch
``GET  /health``               liveness
``GET  /metrics``              Prometheus text: cache hits/misses/bytes, ...
``/label-studio/...``          Label Studio ML backend (label_studio.py)
``/``, ``/api/...``            the interactive demo page (interformer.demo),
                               or the client-decoding page
                               (``tools/demo.py --client-decoding``)
``/docs``                      OpenAPI page
=============================  ==============================================

Errors are ``{"error": message}`` with a 4xx status; a bug answers 500 and
the process keeps serving. Model work runs in the thread pool, one model
call at a time (``ClickEngine.model_lock``).
"""
import base64
import binascii
import os
import time
from typing import Callable, List, Literal, Optional, Sequence, Tuple

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, StrictBool, StrictInt
from starlette.exceptions import HTTPException

from .engine import ClickEngine, EncodedImage, ObjectPrompt, PromptError
from .errors import install_error_handlers
from .guard import BodyGuard, read_body
from .images import DEFAULT_MAX_PIXELS, decode_mask_png
from .outputs import encode_outputs, rle_to_mask
from .request_log import RequestLog, new_request_log

__all__ = ['create_app', 'ServiceConfig']

Point = Tuple[StrictInt, StrictInt, StrictBool]


class ServiceConfig(BaseModel):
    """Limits of one service instance."""
    max_upload_mb: float = 10.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_objects: int = 64
    max_clicks: int = 100
    body_timeout_s: float = 30.0


class ImageInfo(BaseModel):
    image_id: str = Field(description='SHA-256 of the image file bytes')
    height: int
    width: int
    cached: bool = Field(description='true if it was already encoded')


class RLE(BaseModel):
    size: Tuple[int, int] = Field(description='[H, W]')
    counts: str = Field(description='COCO compressed RLE string')


class ObjectIn(BaseModel):
    clicks: List[Point] = Field(
        default=[], description='[y, x, positive] in pixels, click order')
    mask_rle: Optional[RLE] = Field(
        default=None, description='start mask (previous prediction)')
    mask_png: Optional[str] = Field(
        default=None, description='start mask as base64 PNG, non-zero = '
        'object')
    box: Optional[Tuple[int, int, int, int]] = Field(
        default=None, description='[y0, x0, y1, x1], ends exclusive')


class SegmentRequest(BaseModel):
    image_id: Optional[str] = Field(
        default=None, description='from POST /v1/images')
    image: Optional[str] = Field(
        default=None, description='or the image file as base64')
    objects: List[ObjectIn]
    outputs: List[Literal['png', 'rle', 'polygons']] = ['rle']
    polygon_tolerance: float = Field(default=1.0, ge=0)


class ObjectOut(BaseModel):
    area: int
    png: Optional[str] = None
    rle: Optional[RLE] = None
    polygons: Optional[List[List[Tuple[int, int]]]] = Field(
        default=None, description='polygons of [y, x] points')


class SegmentResponse(ImageInfo):
    objects: List[ObjectOut]
    decode_ms: float


def _b64(data: str, what: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, f'{what} is not valid base64') from None


def _prompt(obj: ObjectIn, shape: Tuple[int, int],
            index: int) -> ObjectPrompt:
    mask = None
    if obj.mask_rle is not None:
        if tuple(obj.mask_rle.size) != tuple(shape):
            raise PromptError(f'object {index}: mask_rle size '
                              f'{list(obj.mask_rle.size)} is not the image '
                              f'size {list(shape)}')
        try:
            mask = rle_to_mask(obj.mask_rle.model_dump())
        except Exception:
            raise PromptError(f'object {index}: mask_rle is not a valid '
                              'COCO RLE') from None
    elif obj.mask_png is not None:
        mask = decode_mask_png(_b64(obj.mask_png, f'object {index} '
                                    'mask_png'), shape)
    return ObjectPrompt(clicks=list(obj.clicks), mask=mask, box=obj.box)


def _metrics(engine: ClickEngine) -> str:
    stats = engine.stats()
    rows = [
        ('interformer_cache_hits_total', 'counter',
         'feature cache lookups that found the image', stats['hits']),
        ('interformer_cache_misses_total', 'counter',
         'feature cache lookups that had to encode', stats['misses']),
        ('interformer_cache_evictions_total', 'counter',
         'images evicted to stay under --cache-mb', stats['evictions']),
        ('interformer_cache_entries', 'gauge', 'images in the cache',
         stats['entries']),
        ('interformer_cache_bytes', 'gauge', 'bytes held by the cache',
         stats['bytes']),
        ('interformer_cache_max_bytes', 'gauge', '--cache-mb in bytes',
         stats['max_bytes']),
        ('interformer_encodes_total', 'counter', 'images encoded',
         stats['encodes']),
        ('interformer_store_hits_total', 'counter',
         'images answered from the feature store (--features)',
         stats['store_hits']),
        ('interformer_encode_seconds_total', 'counter',
         'time spent encoding', stats['encode_seconds']),
        ('interformer_decode_calls_total', 'counter',
         'batched decoder calls', stats['decode_calls']),
        ('interformer_resident_memory_bytes', 'gauge',
         'resident set size of this process', _rss_bytes()),
    ]
    lines = []
    for name, kind, doc, value in rows:
        lines += [f'# HELP {name} {doc}', f'# TYPE {name} {kind}',
                  f'{name} {value}']
    return '\n'.join(lines) + '\n'


def _rss_bytes() -> int:
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        return 0


def create_app(engine: Optional[ClickEngine],
               config: Optional[ServiceConfig] = None,
               demo_predictor_factory: Optional[Callable] = None,
               label_studio: bool = True,
               routers: Sequence[APIRouter] = (),
               **demo_options):
    """Build the ASGI app around one engine.

    Args:
        engine: the model and its feature cache (``None``: the demo page
            only, no JSON API).
        config: limits (defaults: 10 MB uploads, 4.2 MP images).
        demo_predictor_factory: builds a predictor per demo session; the
            demo page is served at ``/`` when given.
        label_studio: mount the Label Studio ML backend at
            ``/label-studio``.
        routers: more routes (e.g. the client-decoding page of
            :func:`interformer.deploy.client_routes.build_client_router`).
        demo_options: ``max_sessions``, ``examples_dir``, ``model_lock``,
            ``feature_store`` of the demo (the engine's lock by default).

    Returns:
        The app wrapped in :class:`BodyGuard` (``.fastapi`` is the
        FastAPI app; ``.fastapi.state.request_log`` the latest requests).
    """
    config = config or ServiceConfig()
    app = FastAPI(title='InterFormer annotation service',
                  description='Click segmentation with a feature cache.',
                  version='1')
    app.state.engine = engine
    app.state.config = config
    app.state.request_log = new_request_log()
    app.add_middleware(RequestLog, entries=app.state.request_log)
    install_error_handlers(app, {PromptError: 400})
    if engine is not None:
        _add_api_routes(app, engine, config, label_studio)
    if demo_predictor_factory is not None:
        from interformer.demo.app import build_demo_router
        if engine is not None:  # one model: one lock for both users
            demo_options.setdefault('model_lock', engine.model_lock)
        router = build_demo_router(
            demo_predictor_factory, max_upload_mb=config.max_upload_mb,
            max_pixels=config.max_pixels, **demo_options)
        app.state.demo_sessions = router.sessions
        app.include_router(router)
    for router in routers:
        app.include_router(router)
    max_body = int(config.max_upload_mb * 2**20 * 4 / 3) + 2**20
    guarded = BodyGuard(app, max_body, config.body_timeout_s)
    guarded.fastapi = app
    return guarded


def _add_api_routes(app: FastAPI, engine: ClickEngine,
                    config: ServiceConfig, label_studio: bool) -> None:
    """The JSON API, health, metrics and the Label Studio backend."""

    async def encode(data: bytes) -> Tuple[EncodedImage, bool]:
        return await run_in_threadpool(engine.encode_bytes, data,
                                       config.max_pixels)

    def info(encoded: EncodedImage, hit: bool) -> dict:
        height, width = encoded.image_shape
        return dict(image_id=encoded.key, height=height, width=width,
                    cached=hit)

    @app.post('/v1/images', response_model=ImageInfo,
              summary='Encode an image (raw file bytes as the body)',
              openapi_extra={'requestBody': {'content': {
                  'application/octet-stream': {'schema': {
                      'type': 'string', 'format': 'binary'}}}}})
    async def post_image(request: Request) -> dict:
        body = await read_body(request, int(config.max_upload_mb * 2**20),
                               'the upload')
        return info(*await encode(body))

    @app.get('/v1/images/{image_id}', response_model=ImageInfo,
             summary='Whether an image is in the cache')
    def get_image(image_id: str) -> dict:
        encoded = engine.lookup(image_id)
        if encoded is None:
            raise HTTPException(404, f'unknown image_id {image_id!r}: '
                                'POST the image to /v1/images again')
        return info(encoded, True)

    @app.post('/v1/segment', response_model=SegmentResponse,
              response_model_exclude_none=True,
              summary='Segment objects of one image from clicks')
    async def segment(req: SegmentRequest) -> dict:
        if (req.image_id is None) == (req.image is None):
            raise HTTPException(400, 'give exactly one of image_id and '
                                'image')
        if not 1 <= len(req.objects) <= config.max_objects:
            raise HTTPException(400, f'objects: give 1 to '
                                f'{config.max_objects} objects')
        if any(len(o.clicks) > config.max_clicks for o in req.objects):
            raise HTTPException(400, f'at most {config.max_clicks} clicks '
                                'per object')
        if req.image is not None:
            encoded, hit = await encode(_b64(req.image, 'image'))
        else:
            encoded, hit = engine.lookup(req.image_id), True
            if encoded is None:
                raise HTTPException(404, f'unknown image_id '
                                    f'{req.image_id!r}: POST the image to '
                                    '/v1/images (it may have been evicted)')

        def run() -> dict:
            prompts = [_prompt(o, encoded.image_shape, i)
                       for i, o in enumerate(req.objects)]
            start = time.perf_counter()
            masks = engine.segment(encoded, prompts)
            decode_ms = (time.perf_counter() - start) * 1000
            objects = [encode_outputs(m, req.outputs, req.polygon_tolerance)
                       for m in masks]
            return dict(info(encoded, hit), objects=objects,
                        decode_ms=round(decode_ms, 3))

        return await run_in_threadpool(run)

    @app.get('/health', summary='Liveness')
    def health() -> dict:
        return {'status': 'ok'}

    @app.get('/metrics', response_class=PlainTextResponse,
             summary='Prometheus metrics')
    def metrics() -> str:
        return _metrics(engine)

    if label_studio:
        from .label_studio import build_label_studio_router
        app.include_router(build_label_studio_router(engine, config),
                           prefix='/label-studio')
