"""RITM flip and ZoomIn geometry: TV9 and TV11 of evaluation.md §4, §9."""
import numpy as np
import pytest

from interformer.evaluation.ritm_transforms import (
    ZOOM_IN_DEFAULTS,
    RitmZoomIn,
    bbox_iou,
    expand_bbox,
    flip_clicks,
    flip_x,
    get_object_roi,
    map_click_to_roi,
    merge_flipped_logits,
    roi_contains_positive_clicks,
    roi_target_shape,
    update_roi,
)
from interformer.interaction import Box, Click

# RITM's inclusive (rmin, rmax, cmin, cmax) boxes, as in its tests
R = Box.from_inclusive


def test_tv9_flip():
    assert flip_x(2, 7) == 4
    assert flip_clicks(
        [Click(3, 2, True), Click(0, 6, False)],
        7) == [Click(3, 4, True), Click(0, 0, False)]
    with pytest.raises(ValueError, match='outside'):
        flip_x(7, 7)
    logits = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    # A model that is exactly flip-equivariant gives back its own logits.
    np.testing.assert_array_equal(
        merge_flipped_logits(logits, logits[..., ::-1]), logits)
    merged = merge_flipped_logits(logits, np.zeros_like(logits))
    np.testing.assert_array_equal(merged, logits / 2)  # before any sigmoid


def test_tv11_zoom_roi_small_object():
    mask = np.zeros((1000, 800), bool)
    mask[100:200, 300:350] = True
    assert Box.from_mask(mask) == R(100, 199, 300, 349)
    # Centre 149.5 / 324.5, min crop 200, Python round: 49.5 -> 50.
    assert expand_bbox(R(100, 199, 300, 349), 1.4, 200) == R(50, 250, 224, 424)
    roi = get_object_roi(mask, [], 1.4, 200)
    assert roi == R(50, 250, 224, 424)  # 201 x 201
    assert (roi.height, roi.width) == (201, 201)
    assert roi_target_shape(roi, 400) == (400, 400)
    y, x = map_click_to_roi(Click(150, 325, True), roi, (400, 400))
    assert y == pytest.approx(199.005, abs=1e-3)
    assert x == pytest.approx(200.995, abs=1e-3)


def test_tv11_zoom_roi_large_object_is_downscaled():
    mask = np.zeros((1000, 800), bool)
    mask[0:900, 100:700] = True
    assert expand_bbox(Box.from_mask(mask), 1.4,
                       200) == R(-180, 1080, -20, 820)
    roi = get_object_roi(
        mask, [], **{
            k: ZOOM_IN_DEFAULTS[k]
            for k in ('expansion_ratio', 'min_crop_size')
        })
    assert roi == R(0, 999, 0, 799) == Box.from_shape(1000, 800)
    assert roi_target_shape(roi, ZOOM_IN_DEFAULTS['target_size']) == (400, 320)
    assert roi_target_shape(roi, (448, 448)) == (448, 448)  # fixedN mode


def test_positive_clicks_join_the_roi_and_empty_mask_means_no_zoom():
    mask = np.zeros((1000, 800), bool)
    assert get_object_roi(mask, [Click(5, 5, True)]) is None
    mask[100:200, 300:350] = True
    roi = get_object_roi(mask, [Click(600, 330, True), Click(900, 10, False)])
    # Rows 100..600 (501 px): centre 350, side 701.4 -> (-1, 701), clamped.
    # The negative click is ignored, so the columns stay (224, 424).
    assert roi == R(0, 701, 224, 424)
    assert R(-5, 2000, 3, 900).clip(1000, 800) == R(0, 999, 3, 799)


def test_roi_update_rule():
    old = R(50, 250, 224, 424)
    inside = [Click(150, 300, True)]
    assert bbox_iou(old, old) == 1.0
    assert bbox_iou(old, R(260, 400, 224, 424)) == 0.0
    assert roi_contains_positive_clicks(old, inside)
    assert not roi_contains_positive_clicks(old, [Click(250, 300, True)])
    assert roi_contains_positive_clicks(old, [Click(250, 300, False)])
    near = R(55, 255, 224, 424)
    assert update_roi(None, near, inside) == near
    assert update_roi(old, near, inside) == old  # IoU 0.95: keep
    far = R(150, 350, 224, 424)
    assert update_roi(old, far, inside) == far  # IoU < 0.5: replace
    assert update_roi(old, near, [Click(250, 300, True)]) == near


def test_zoom_in_state_follows_ritm():
    zoom = RitmZoomIn(**ZOOM_IN_DEFAULTS)
    mask = np.zeros((1000, 800), bool)
    mask[100:200, 300:350] = True
    first = [Click(150, 325, True)]
    assert zoom.view(None, first) is None  # the first click: whole image
    assert zoom.view(mask, first) is None  # skip_clicks = 1
    two = first + [Click(120, 310, False)]
    assert zoom.view(np.zeros_like(mask), two) is None  # nothing predicted
    assert zoom.view(mask, two) == R(50, 250, 224, 424) == zoom.roi
    shifted = np.roll(mask, 5, axis=0)  # IoU 0.95: the ROI is kept
    assert zoom.view(shifted, two + [Click(160, 330, True)]) == zoom.roi
    assert zoom.view(mask, two + [Click(600, 330, True)]) == R(
        0, 701, 224, 424)  # a positive click outside: recomputed
    zoom.reset()
    assert zoom.roi is None
    with pytest.raises(ValueError, match='skip_clicks'):
        RitmZoomIn(skip_clicks=-1)
    with pytest.raises(ValueError, match='target_size'):
        RitmZoomIn(target_size=0)
