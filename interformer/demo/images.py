"""Image bytes in and out of the demo (see :mod:`interformer.serving.images`,
which checks every upload's header before decoding)."""
from interformer.serving.images import (
    DEFAULT_MAX_PIXELS,
    UploadError,
    decode_image,
    encode_jpeg,
    encode_png,
)

__all__ = [
    'UploadError', 'decode_image', 'encode_png', 'encode_jpeg',
    'DEFAULT_MAX_PIXELS'
]
