"""Checked image decoding for every upload path of the service and demo.

The size of an image is read from its header before any pixel is decoded,
for every accepted format, and a too-large image is refused at that point
(HTTP 413): a 49 KB PNG of 20000x20000 pixels costs a header read, not a
1.2 GB decode. Pillow's ``DecompressionBombError`` is such a refusal, never
a reason to fall back to decoding. Formats whose header cannot be read are
refused (400) rather than decoded blindly. Decodes run at most
``max_concurrent`` at a time (a process-wide semaphore), so many uploads at
once cannot multiply the peak memory.
"""
import io
import re
import threading
from typing import Tuple

import cv2
import numpy as np

__all__ = [
    'UploadError', 'decode_image', 'encode_png', 'encode_jpeg',
    'image_size_from_header', 'DEFAULT_MAX_PIXELS', 'ACCEPTED_FORMATS',
    'set_max_concurrent_decodes', 'decode_mask_png'
]

#: Default limit on width * height of an uploaded image (about 4.2 MP).
DEFAULT_MAX_PIXELS = 2048 * 2048
#: Formats accepted (the header of each is read before decoding).
ACCEPTED_FORMATS = ('PNG', 'JPEG', 'BMP', 'WEBP', 'TIFF', 'PPM', 'HDR')
_JPEG_QUALITY = 92
_SUPPORTED = 'PNG, JPEG, BMP, WebP, TIFF, PNM or Radiance HDR'
# Radiance .hdr: '#?RADIANCE' / '#?RGBE', header lines, a blank line, then
# the resolution line, e.g. '-Y 480 +X 640'.
_HDR_MAGIC = (b'#?RADIANCE', b'#?RGBE')
_HDR_RES = re.compile(rb'^([-+])([XY]) (\d+) ([-+])([XY]) (\d+)$')
_HDR_HEADER_LIMIT = 64 * 1024
_decode_slots = threading.BoundedSemaphore(2)


class UploadError(ValueError):
    """A rejected upload, with the HTTP status the server should answer.

    Args:
        message: what is wrong, written for the person sending it.
        status: HTTP status code (400 bad input, 413 too large).
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def set_max_concurrent_decodes(count: int) -> None:
    """Bound the number of image decodes running at once (default 2)."""
    global _decode_slots
    if count < 1:
        raise ValueError(f'max concurrent decodes must be >= 1, got {count}')
    _decode_slots = threading.BoundedSemaphore(count)


def _hdr_size(data: bytes) -> Tuple[int, int]:
    """(W, H) from a Radiance HDR header."""
    head = data[:_HDR_HEADER_LIMIT]
    lines = head.split(b'\n')
    for index, line in enumerate(lines):
        if line.strip() == b'' and index + 1 < len(lines):
            match = _HDR_RES.match(lines[index + 1].strip())
            if match is None:
                break
            sizes = {match.group(2): int(match.group(3)),
                     match.group(5): int(match.group(6))}
            return sizes[b'X'], sizes[b'Y']
    raise UploadError('the Radiance HDR header has no resolution line')


def image_size_from_header(data: bytes) -> Tuple[str, int, int]:
    """Format name, width and height read from the header only.

    Raises:
        UploadError: not an accepted format (400), or a header that
            Pillow refuses as a decompression bomb (413).
    """
    if data.startswith(_HDR_MAGIC):
        width, height = _hdr_size(data)
        return 'HDR', width, height
    from PIL import Image
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            width, height = img.size
    except Image.DecompressionBombError as err:
        # the header was read; the pixel count is far above any limit
        raise UploadError(f'the image header declares a decompression '
                          f'bomb, refused before decoding ({err})',
                          status=413) from None
    except Exception:
        raise UploadError(f'the upload is not an image that can be decoded '
                          f'(expected {_SUPPORTED})') from None
    if fmt == 'MPO':  # multi-picture JPEG (phones): decoded as JPEG
        fmt = 'JPEG'
    if fmt not in ACCEPTED_FORMATS:
        raise UploadError(f'{fmt} images are not accepted (expected '
                          f'{_SUPPORTED})')
    return fmt, width, height


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise UploadError(
            f'image is {width}x{height} = {width * height / 1e6:.1f} '
            f'megapixels; the limit is {max_pixels / 1e6:.1f} megapixels '
            '(resize it, or start the server with a larger --max-pixels)',
            status=413)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    # float (HDR): tone map with a clip, like a simple viewer would
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def decode_image(data: bytes,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode uploaded bytes into an RGB image, after a header check.

    Grey and RGBA images become RGB (alpha dropped); 16-bit images are
    scaled to 8 bit; HDR is clipped to [0, 1]; EXIF orientation is applied.

    Args:
        data: the raw file bytes.
        max_pixels: the largest allowed width * height.

    Returns:
        np.ndarray: (H, W, 3) uint8 RGB.

    Raises:
        UploadError: empty, not an accepted image, or damaged (400); more
            than ``max_pixels`` pixels by its header (413).
    """
    if not data:
        raise UploadError('the upload is empty: send an image file')
    fmt, width, height = image_size_from_header(data)
    _check_pixels(width, height, max_pixels)
    buf = np.frombuffer(data, dtype=np.uint8)
    flags = cv2.IMREAD_COLOR | (cv2.IMREAD_ANYDEPTH if fmt == 'HDR' else 0)
    with _decode_slots:
        try:
            bgr = cv2.imdecode(buf, flags)
        except cv2.error:
            bgr = None
    if bgr is None or bgr.ndim != 3 or bgr.size == 0:
        raise UploadError(f'the {fmt} upload cannot be decoded (damaged '
                          'or truncated file?)')
    if bgr.shape[0] * bgr.shape[1] > max_pixels:
        _check_pixels(bgr.shape[1], bgr.shape[0], max_pixels)
    return np.ascontiguousarray(_to_uint8(bgr)[:, :, ::-1])


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


def decode_mask_png(data: bytes, shape: Tuple[int, int]) -> np.ndarray:
    """A (H, W) bool mask from PNG bytes (non-zero = object).

    Raises:
        UploadError: not a PNG of the image's size.
    """
    fmt, width, height = image_size_from_header(data)
    if (height, width) != tuple(shape):
        raise UploadError(f'the mask is {width}x{height}; the image is '
                          f'{shape[1]}x{shape[0]}')
    with _decode_slots:
        mask = cv2.imdecode(np.frombuffer(data, np.uint8),
                            cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise UploadError(f'the {fmt} mask cannot be decoded')
    return mask > 0
