"""The bounding-box distance transform equals the padded full-image one
(exactly in squared distances; within OpenCV's 1-ulp sqrt rounding in
float32)."""
import cv2
import numpy as np
from scipy import ndimage

from interformer.interaction import distance
from interformer.interaction.distance import (
    bbox_distance_transform,
    padded_distance_transform,
    squared_distance,
)
from interformer.interaction.geometry import Box


def test_padding_matters_tv1():
    mask = np.ones((5, 5), bool)
    expected = np.array([[1, 1, 1, 1, 1], [1, 2, 2, 2, 1], [1, 2, 3, 2, 1],
                         [1, 2, 2, 2, 1], [1, 1, 1, 1, 1]], np.float32)
    np.testing.assert_array_equal(padded_distance_transform(mask), expected)
    unpadded = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2,
                                     cv2.DIST_MASK_PRECISE)
    assert unpadded.min() > 1e18  # no zero pixel: the huge-value failure


def test_tv5_fp_distances():
    mask = np.zeros((5, 5), bool)
    mask[0:3, 0:3] = True
    mask[2, 2] = False  # the object pixel is not an FP
    dist = padded_distance_transform(mask)
    np.testing.assert_allclose(
        dist[:3], [[1, 1, 1, 0, 0], [1, np.sqrt(2), 1, 0, 0], [1, 1, 0, 0, 0]],
        rtol=1e-6)
    assert not dist[3:].any()


def _random_masks(rng, count):
    for i in range(count):
        h, w = rng.integers(1, 64, size=2)
        kind = i % 4
        if kind == 0:  # scattered pixels
            mask = rng.random((h, w)) < rng.uniform(0.01, 0.3)
        elif kind == 1:  # dense, often touching the border
            mask = rng.random((h, w)) < rng.uniform(0.7, 1.0)
        elif kind == 2:  # a few blobs
            mask = np.zeros((h, w), np.uint8)
            for _ in range(int(rng.integers(1, 4))):
                cv2.circle(mask, (int(rng.integers(w)), int(rng.integers(h))),
                           int(rng.integers(1, 20)), 1, -1)
            mask = mask.astype(bool)
        else:  # a rectangle with holes
            mask = np.zeros((h, w), bool)
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            mask[y0:rng.integers(y0, h) + 1, x0:rng.integers(x0, w) + 1] = 1
            mask &= rng.random((h, w)) > 0.05
        yield mask


def _exact_sq(mask):
    padded = np.pad(mask.astype(np.uint8), 1, mode='constant')
    return np.rint(ndimage.distance_transform_edt(padded)**2)[1:-1, 1:-1]


def _ulps(a, b):
    a = np.asarray(a, np.float32).view(np.int32).astype(np.int64)
    return np.abs(a - np.asarray(b, np.float32).view(np.int32)).max()


def test_bbox_dt_equals_full_dt_on_random_masks():
    rng = np.random.default_rng(0)
    checked = 0
    for mask in _random_masks(rng, 600):
        full = padded_distance_transform(mask)
        result = bbox_distance_transform(mask)
        if not mask.any():
            assert result is None and Box.from_mask(mask) is None
            continue
        dist, (y0, x0) = result
        box = Box.from_mask(mask)
        assert (y0, x0) == (box.y0, box.x0)
        assert dist.shape == (box.height, box.width)
        window = full[box.slices]
        exact = _exact_sq(mask)
        # Integer squared distances: identical to the full image and to an
        # independent exact EDT; the float32 values within OpenCV's 1 ulp.
        sq = np.rint(dist.astype(np.float64)**2)
        np.testing.assert_array_equal(sq, np.rint(window.astype(float)**2))
        np.testing.assert_array_equal(sq, exact[box.slices])
        assert _ulps(dist, window) <= 1
        assert squared_distance(dist.max()) == exact.max()
        outside = full.copy()
        outside[box.slices] = 0
        assert not outside.any()
        checked += 1
    assert checked > 550


def test_float64_path_for_large_boxes(monkeypatch):
    # Boxes whose distances could be too large for float32 use scipy's
    # exact float64 EDT; force that path on small masks and compare.
    monkeypatch.setattr(distance, 'MAX_FLOAT32_DISTANCE', 2)
    rng = np.random.default_rng(1)
    for mask in _random_masks(rng, 40):
        result = bbox_distance_transform(mask)
        if result is None:
            continue
        dist, (y0, x0) = result
        if min(dist.shape) > 2:
            assert dist.dtype == np.float64
        y1, x1 = y0 + dist.shape[0], x0 + dist.shape[1]
        np.testing.assert_array_equal(np.rint(dist**2),
                                      _exact_sq(mask)[y0:y1, x0:x1])


def test_accepts_uint8_masks():
    mask = np.zeros((7, 9), np.uint8)
    mask[1:6, 2:8] = 5
    np.testing.assert_array_equal(padded_distance_transform(mask),
                                  padded_distance_transform(mask > 0))
    dist, origin = bbox_distance_transform(mask)
    assert origin == (1, 2) and dist.max() == 3.0
