"""The one box type and the canvas helpers."""
import numpy as np
import pytest
import torch

from interformer.interaction.geometry import (
    Box,
    canvas_shape,
    crop_to_image,
    grid_shape,
    pad_to_canvas,
)


def test_box_from_mask_is_half_open_in_y_x_order():
    mask = np.zeros((20, 30), bool)
    mask[3:7, 10:25] = True
    box = Box.from_mask(mask)
    assert box == (3, 10, 7, 25) and (box.height, box.width) == (4, 15)
    assert mask[box.slices].all() and mask[box.slices].sum() == mask.sum()
    assert Box.from_mask(torch.from_numpy(mask)) == box
    assert Box.from_mask(np.zeros((4, 4), bool)) is None
    assert Box.from_mask(torch.zeros(4, 4, dtype=torch.bool)) is None
    with pytest.raises(ValueError, match='2-D'):
        Box.from_mask(np.zeros((1, 4, 4), bool))


def test_box_conversions_and_operations():
    box = Box(2, 5, 9, 11)
    assert box.to_xyxy() == (5, 2, 11, 9)
    assert Box.from_xyxy(box.to_xyxy()) == box
    assert box.to_inclusive() == (2, 8, 5, 10)
    assert Box.from_inclusive(*box.to_inclusive()) == box
    assert box.contains(2, 5) and not box.contains(9, 5)
    assert Box(-3, 4, 50, 12).clip(40, 10) == (0, 4, 40, 10)
    assert Box(33, 5, 65, 70).snap_outward(32) == (32, 0, 96, 96)
    # feature windows: rounded outward, at least one cell, inside the map
    assert Box.from_xyxy((32, 0, 96, 64)).on_grid(16, 4, 6).to_xyxy() == (
        2, 0, 6, 4)
    assert Box(0, 200, 10, 210).on_grid(32, 2, 3) == (0, 2, 1, 3)
    assert Box(3, 3, 3, 8).is_empty and not box.is_empty
    with pytest.raises(ValueError):
        box.snap_outward(0)


def test_canvas_grid_pad_and_crop():
    assert canvas_shape(100, 65) == (128, 96)
    assert canvas_shape(64, 64) == (64, 64)
    assert grid_shape((128, 96)) == (32, 24)
    with pytest.raises(ValueError, match='multiple'):
        grid_shape((130, 96))
    with pytest.raises(ValueError):
        canvas_shape(0, 5)
    gt = np.arange(6, dtype=np.int64).reshape(2, 3)
    padded = pad_to_canvas(gt, (4, 5), value=-1)
    assert padded.shape == (4, 5) and padded.dtype == gt.dtype
    assert (padded[2:] == -1).all() and (padded[:, 3:] == -1).all()
    np.testing.assert_array_equal(crop_to_image(padded, gt.shape), gt)
    batch = torch.ones(2, 1, 3, 3)
    assert pad_to_canvas(batch, (4, 4)).shape == (2, 1, 4, 4)
    with pytest.raises(ValueError, match='smaller'):
        pad_to_canvas(gt, (1, 5))
