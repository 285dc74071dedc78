"""Damaged image files: detected, named, never silently grey.

libjpeg decodes a truncated JPEG with the missing rows filled grey and
prints "Premature end of JPEG file" without the file name; OpenCV returns
the image as if it were whole. :func:`check_image_file` catches this
cheaply: a JPEG must end with its EOI marker and a PNG with its IEND chunk
(a read of the file's last bytes); only a file that does not is decoded
in full with Pillow (which refuses truncated data) to tell trailing junk
after a complete image from a cut-off one.

Used by the click-test readers (:mod:`.click_eval.base`) and by the training
datasets (:class:`.object_dataset.BaseObjectDataset`, which stop or skip
and count by config).
"""
import os
import os.path as osp
from typing import Optional

from ..utils.cli import UserError

__all__ = ['DamagedImageError', 'check_image_file', 'check_image_bytes']

_JPEG_SOI = b'\xff\xd8'
_JPEG_EOI = b'\xff\xd9'
_PNG_SIG = b'\x89PNG\r\n\x1a\n'
_PNG_IEND = b'IEND\xaeB`\x82'
_TAIL = 64
# Bytes some writers pad a file with after its end marker.
_PADDING = b'\x00\r\n \t\xff'


class DamagedImageError(UserError):
    """An image file that is truncated or cannot be decoded; the message
    names the file."""


def _complete_by_marker(head: bytes, tail: bytes) -> Optional[bool]:
    """True/False when the end marker decides, None for other formats."""
    if head.startswith(_JPEG_SOI):
        return tail.rstrip(b'\x00\r\n \t').endswith(_JPEG_EOI)
    if head.startswith(_PNG_SIG):
        return tail.rstrip(_PADDING).endswith(_PNG_IEND) or \
            tail.endswith(_PNG_IEND)
    return None


def _pillow_error(path_or_file) -> Optional[str]:
    """Decode fully with Pillow; the error text, or None if it is whole."""
    from PIL import Image, ImageFile
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with Image.open(path_or_file) as img:
            img.load()
    except Exception as err:  # Pillow raises OSError, SyntaxError, ...
        return f'{type(err).__name__}: {err}'
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
    return None


def check_image_bytes(data: bytes, path: str) -> None:
    """:func:`check_image_file` for an encoded image already in memory."""
    if not data:
        raise DamagedImageError(f'damaged image file {path}: it is empty')
    complete = _complete_by_marker(data[:8], data[-_TAIL:])
    if complete is False:
        import io
        error = _pillow_error(io.BytesIO(data))
        if error is not None:
            raise DamagedImageError(
                f'damaged image file {path}: truncated or corrupt '
                f'({len(data)} bytes; {error})')


def check_image_file(path: str) -> None:
    """Raise :class:`DamagedImageError` if ``path`` is a cut-off JPEG/PNG.

    Costs one open and a read of the first and last bytes for a whole file.

    Raises:
        FileNotFoundError: the file does not exist.
        DamagedImageError: the file is empty, or a JPEG / PNG that stops
            before its end marker and does not decode.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    size = osp.getsize(path)
    if size == 0:
        raise DamagedImageError(f'damaged image file {path}: it is empty')
    with open(path, 'rb') as f:
        head = f.read(8)
        f.seek(max(size - _TAIL, 0), os.SEEK_SET)
        tail = f.read()
    if _complete_by_marker(head, tail) is False:
        error = _pillow_error(path)
        if error is not None:
            raise DamagedImageError(
                f'damaged image file {path}: truncated or corrupt '
                f'({size} bytes; {error})')
