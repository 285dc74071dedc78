"""Interactive web demo: one page on the service's ASGI app.

Run it with ``python tools/demo.py [CONFIG CHECKPOINT]`` (or
``tools/serve.py``, which serves the same page at ``/``). The app builds a
:class:`~interformer.demo.session.DemoSession` per browser; each session
wraps an ``InterFormerPredictor`` that encodes the image once and decodes per
click.
"""
from .images import UploadError, decode_image, encode_png
from .render import render_overlay
from .session import DemoSession

__all__ = [
    'DemoSession', 'UploadError', 'decode_image', 'encode_png',
    'render_overlay', 'build_demo_app', 'EXAMPLES_DIR', 'STATIC_DIR'
]


def __getattr__(name):
    # the web app needs FastAPI: imported on first use only
    if name in ('build_demo_app', 'EXAMPLES_DIR', 'STATIC_DIR'):
        from . import app
        return getattr(app, name)
    raise AttributeError(name)
