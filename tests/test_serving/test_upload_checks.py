"""Upload decoding: the header is checked before any decode, for every
accepted format; decompression bombs are refused, not decoded."""
import io
import threading
import time
import zlib

import cv2
import numpy as np
import pytest

from interformer.serving import images
from interformer.serving.images import (
    UploadError,
    decode_image,
    image_size_from_header,
)


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR of the given size, a tiny IDAT of
    zeros (a real decode would allocate width * height * 3 bytes)."""
    import struct

    def chunk(kind, data):
        body = kind + data
        return (struct.pack('>I', len(data)) + body
                + struct.pack('>I', zlib.crc32(body) & 0xffffffff))
    ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b'\0' * 1024)
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr)
            + chunk(b'IDAT', idat) + chunk(b'IEND', b''))


def _encode(ext: str, rgb: np.ndarray) -> bytes:
    if ext == '.hdr':
        ok, buf = cv2.imencode('.hdr', rgb[:, :, ::-1].astype(np.float32)
                               / 255.0)
    else:
        ok, buf = cv2.imencode(ext, rgb[:, :, ::-1])
    assert ok, ext
    return buf.tobytes()


@pytest.mark.parametrize('ext', ['.png', '.jpg', '.bmp', '.webp', '.tiff',
                                 '.ppm', '.hdr'])
def test_every_accepted_format_is_header_checked(ext, monkeypatch):
    rgb = np.full((40, 50, 3), 120, np.uint8)
    data = _encode(ext, rgb)
    fmt, width, height = image_size_from_header(data)
    assert (width, height) == (50, 40), fmt
    assert decode_image(data, max_pixels=2000).shape == (40, 50, 3)
    # refused from the header: the decoder is never called
    calls = []
    monkeypatch.setattr(images.cv2, 'imdecode',
                        lambda *a: calls.append(a))
    with pytest.raises(UploadError, match='50x40') as info:
        decode_image(data, max_pixels=1999)
    assert info.value.status == 413 and calls == []


def test_huge_png_refused_without_decoding(monkeypatch):
    data = _png_header_only(20000, 20000)
    assert len(data) < 50_000
    calls = []
    monkeypatch.setattr(images.cv2, 'imdecode',
                        lambda *a: calls.append(a))
    start = time.perf_counter()
    with pytest.raises(UploadError) as info:
        decode_image(data)
    assert time.perf_counter() - start < 0.5
    assert info.value.status == 413 and calls == []
    # Pillow calls it a decompression bomb: refused as such, not swallowed
    assert 'decompression bomb' in str(info.value)


def test_pillow_bomb_error_is_not_swallowed(monkeypatch):
    from PIL import Image
    data = _png_header_only(100, 100)
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 10)
    with pytest.raises(UploadError, match='decompression bomb') as info:
        image_size_from_header(data)
    assert info.value.status == 413


@pytest.mark.parametrize('data', [b'hello, not an image', b'\x89PNG\r\n',
                                  b'GIF89a' + bytes(20)])
def test_non_images_and_other_formats_are_refused(data):
    with pytest.raises(UploadError) as info:
        decode_image(data)
    assert info.value.status == 400


def test_gif_is_refused_by_name():
    from PIL import Image
    buf = io.BytesIO()
    Image.new('RGB', (4, 4)).save(buf, format='GIF')
    with pytest.raises(UploadError, match='GIF images are not accepted'):
        decode_image(buf.getvalue())


def test_truncated_image_is_an_error():
    data = _encode('.png', np.random.default_rng(0).integers(
        0, 255, (64, 64, 3), dtype=np.uint8))
    with pytest.raises(UploadError, match='cannot be decoded') as info:
        decode_image(data[:len(data) // 2])
    assert info.value.status == 400


def test_concurrent_decodes_are_bounded(monkeypatch):
    images.set_max_concurrent_decodes(2)
    data = _encode('.png', np.zeros((8, 8, 3), np.uint8))
    real = cv2.imdecode
    running, peak, lock = [0], [0], threading.Lock()

    def slow_decode(*args):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return real(*args)
    monkeypatch.setattr(images.cv2, 'imdecode', slow_decode)
    threads = [threading.Thread(target=decode_image, args=(data, ))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 2
