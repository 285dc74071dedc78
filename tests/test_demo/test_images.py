"""Decoding uploads: RGB order, grey/alpha, rejections with clear messages."""
import cv2
import numpy as np
import pytest

from interformer.demo import UploadError, decode_image, encode_png


def _png(array):
    ok, buf = cv2.imencode('.png', array)
    assert ok
    return buf.tobytes()


def test_png_round_trip_keeps_rgb_order():
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = 200  # red
    decoded = decode_image(encode_png(rgb))
    np.testing.assert_array_equal(decoded, rgb)


def test_grey_and_rgba_become_rgb():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = decode_image(_png(grey))
    assert out.shape == (3, 4, 3)
    np.testing.assert_array_equal(out[..., 1], grey)
    bgra = np.zeros((3, 4, 4), np.uint8)
    bgra[..., 0] = 255  # blue in OpenCV's BGRA
    out = decode_image(_png(bgra))
    assert out.shape == (3, 4, 3) and (out[..., 2] == 255).all()


@pytest.mark.parametrize('data', [b'hello, not an image', b'\x89PNG\r\n'])
def test_non_image_is_rejected(data):
    with pytest.raises(UploadError, match='not an image') as info:
        decode_image(data)
    assert info.value.status == 400


def test_empty_upload_is_rejected():
    with pytest.raises(UploadError, match='empty'):
        decode_image(b'')


def test_pixel_limit():
    data = _png(np.zeros((40, 50, 3), np.uint8))
    assert decode_image(data, max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(UploadError, match='50x40') as info:
        decode_image(data, max_pixels=1999)
    assert info.value.status == 413


def test_encode_png_label_map_uint16():
    labels = np.array([[0, 1], [256, 300]], np.uint16)
    decoded = cv2.imdecode(np.frombuffer(encode_png(labels), np.uint8),
                           cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, labels)
