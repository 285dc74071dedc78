"""Interactive web demo: a standard-library HTTP server and one page.

Run it with ``python tools/demo.py [CONFIG CHECKPOINT]``. The server builds a
:class:`~interformer.demo.session.DemoSession` per browser; each session
wraps an ``InterFormerPredictor`` that encodes the image once and decodes per
click.
"""
from .images import UploadError, decode_image, encode_png
from .render import render_overlay
from .server import EXAMPLES_DIR, STATIC_DIR, DemoServer
from .session import DemoSession

__all__ = [
    'DemoServer', 'DemoSession', 'UploadError', 'decode_image', 'encode_png',
    'render_overlay', 'EXAMPLES_DIR', 'STATIC_DIR'
]
