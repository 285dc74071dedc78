"""Image bytes in and out of the demo: checked decoding, PNG/JPEG encoding.

Uploads are decoded in memory with OpenCV and never written to disk. The
checks happen before any large allocation where possible: the byte size is
checked by the server before the body is read, and the pixel count is read
from the file header (via Pillow when it is installed) before decoding.
"""
import io
from typing import Optional, Tuple

import cv2
import numpy as np

__all__ = [
    'UploadError', 'decode_image', 'encode_png', 'encode_jpeg',
    'DEFAULT_MAX_PIXELS'
]

#: Default limit on width * height of an uploaded image (about 4.2 MP).
DEFAULT_MAX_PIXELS = 2048 * 2048
_JPEG_QUALITY = 92
_SUPPORTED = 'PNG, JPEG, BMP, WebP or TIFF'


class UploadError(ValueError):
    """A rejected upload, with the HTTP status the server should answer.

    Args:
        message: what is wrong, written for the person using the page.
        status: HTTP status code (400 bad input, 413 too large).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _header_size(data: bytes) -> Optional[Tuple[int, int]]:
    """(W, H) from the file header without decoding, or None if unknown."""
    try:
        from PIL import Image
    except ImportError:  # Pillow is optional: fall back to decode-then-check
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # not a format Pillow knows; OpenCV decides below
        return None


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise UploadError(
            f'image is {width}x{height} = {width * height / 1e6:.1f} '
            f'megapixels; the limit is {max_pixels / 1e6:.1f} megapixels '
            '(resize it, or start the demo with a larger --max-pixels)',
            status=413)


def decode_image(data: bytes,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode uploaded bytes into an RGB image.

    Grey and RGBA images become RGB (alpha dropped); 16-bit images are
    scaled to 8 bit; EXIF orientation is applied (OpenCV's default).

    Args:
        data: the raw file bytes.
        max_pixels: the largest allowed width * height.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.

    Raises:
        UploadError: empty data or not a decodable image (status 400), or
            more than ``max_pixels`` pixels (status 413).
    """
    if not data:
        raise UploadError('the upload is empty: choose an image file')
    size = _header_size(data)
    if size is not None:
        _check_pixels(size[0], size[1], max_pixels)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error:
        bgr = None
    if bgr is None or bgr.ndim != 3 or bgr.size == 0:
        raise UploadError(f'the upload is not an image that can be decoded '
                          f'(expected {_SUPPORTED})')
    _check_pixels(bgr.shape[1], bgr.shape[0], max_pixels)
    return np.ascontiguousarray(bgr[:, :, ::-1])


def encode_png(array: np.ndarray) -> bytes:
    """Encode a PNG.

    Args:
        array: (H, W) uint8/uint16 (grey), (H, W, 3) RGB or (H, W, 4) RGBA
            uint8 array.
    """
    if array.ndim == 3:
        code = (cv2.COLOR_RGBA2BGRA
                if array.shape[2] == 4 else cv2.COLOR_RGB2BGR)
        array = cv2.cvtColor(array, code)
    ok, buf = cv2.imencode('.png', array)
    if not ok:
        raise RuntimeError(f'PNG encoding failed for an array of shape '
                           f'{array.shape} and dtype {array.dtype}')
    return buf.tobytes()


def encode_jpeg(rgb: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 RGB image as JPEG (for display only)."""
    ok, buf = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:
        raise RuntimeError('JPEG encoding failed')
    return buf.tobytes()
