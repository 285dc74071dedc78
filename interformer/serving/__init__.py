"""The inference service for annotation tools (see README, "Serving").

``tools/serve.py`` builds :func:`~interformer.serving.app.create_app` around
a :class:`~interformer.serving.engine.ClickEngine` (feature cache keyed by
image content hash, batched multi-object decoding), with the JSON API, the
Label Studio ML backend (``/label-studio``), ``/metrics`` and the demo page
on one ASGI app. The CVAT interactor (``deploy/cvat/interformer``) calls
:func:`~interformer.serving.cvat.handle_cvat_request` on the same engine.
"""
from .cache import FeatureCache, content_key
from .images import UploadError, decode_image, encode_png

__all__ = [
    'FeatureCache', 'content_key', 'UploadError', 'decode_image',
    'encode_png'
]
