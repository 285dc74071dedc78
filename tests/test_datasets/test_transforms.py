"""Training transforms: segment-id maps, rescale, pad, object sampler."""
import numpy as np
import pytest
from scipy import stats
from tiny_coco_formats import encode_rle, polygon_of_box, rasterise

import interformer  # noqa: F401  (registers the transforms)
from interformer.datasets.transforms import (
    IGNORE_INDEX,
    NO_SEGMENT,
    LoadSegmentIdMap,
    ObjectSampler,
    PadToMinSize,
    RandomRescale,
    paint_instances,
    panoptic_to_id_map,
    rgb_to_id,
    segmentation_to_mask,
)
from interformer.datasets.transforms.segment_maps import segment_ids


def box_mask(shape, y0, x0, y1, x1):
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


# ------------------------------------------------------------ segment maps
def test_rgb_to_id_uses_coco_panoptic_encoding():
    rgb = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [7, 3, 2]]],
                   dtype=np.uint8)
    np.testing.assert_array_equal(
        rgb_to_id(rgb), [[1, 256, 65536, 7 + 3 * 256 + 2 * 65536]])
    with pytest.raises(ValueError, match='RGB'):
        rgb_to_id(np.zeros((4, 4), np.uint8))


def test_panoptic_ids_reindexed_in_annotation_order():
    pan = np.array([[0, 5000, 5000], [300, 300, 99]])  # 99: not annotated
    id_map = panoptic_to_id_map(pan, [300, 5000])
    assert id_map.dtype == np.int32
    np.testing.assert_array_equal(id_map, [[0, 2, 2], [1, 1, 0]])


def test_segment_ids_skip_ignore_value():
    gen = segment_ids()
    ids = [next(gen) for _ in range(300)]
    assert ids[0] == 1 and IGNORE_INDEX not in ids
    assert np.all(np.diff(ids) > 0) and ids[-1] == 301


def test_segmentation_to_mask_polygon_and_both_rle_forms():
    h, w = 20, 30
    poly = [polygon_of_box(2, 3, 10, 12), polygon_of_box(12, 20, 18, 28)]
    mask = segmentation_to_mask(poly, h, w)
    assert mask.dtype == bool and mask.shape == (h, w)
    np.testing.assert_array_equal(mask, rasterise(poly, h, w))
    assert mask[5, 5] and mask[15, 25] and not mask[0, 0]
    for compressed in (True, False):
        rle = encode_rle(mask, compressed)
        np.testing.assert_array_equal(segmentation_to_mask(rle, h, w), mask)
    # degenerate polygons (< 3 points) are dropped, not read as boxes
    assert not segmentation_to_mask([[1, 1, 5, 5]], h, w).any()
    with pytest.raises(ValueError, match='does not match'):
        segmentation_to_mask(encode_rle(mask, True), h + 1, w)
    with pytest.raises(ValueError, match='polygons or an RLE'):
        segmentation_to_mask('bad', h, w)


def test_paint_instances_overlap_rule_and_later_on_top():
    shape = (40, 40)
    a = box_mask(shape, 0, 0, 10, 10)  # area 100
    b = box_mask(shape, 0, 4, 10, 14)  # 60 % of b lies on a -> skipped
    c = box_mask(shape, 0, 7, 10, 17)  # 30 % on a -> kept, on top
    d = box_mask(shape, 20, 20, 30, 30)
    e = box_mask(shape, 18, 18, 40, 40)  # 21 % on d, but hides all of d
    empty = np.zeros(shape, bool)
    id_map = paint_instances([a, b, empty, c, d, e], *shape)
    assert id_map.dtype == np.int32
    assert set(np.unique(id_map)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(id_map == 2, c)  # c overwrote a
    np.testing.assert_array_equal(id_map == 1, a & ~c)
    np.testing.assert_array_equal(id_map == 3, d)
    # without the rule everything non-empty is painted, later on top
    no_rule = paint_instances([a, b, c, d, e], *shape, overlap_thr=None)
    np.testing.assert_array_equal(no_rule == 5, e)
    assert set(np.unique(no_rule)) == {0, 1, 2, 3, 5}  # 4 (d) fully hidden


def test_paint_instances_rule_uses_visible_area_of_placed_segments():
    shape = (10, 40)
    a = box_mask(shape, 0, 0, 10, 20)  # area 200
    b = box_mask(shape, 0, 10, 10, 30)  # covers 50 % of a -> kept (not > .5)
    # c: 60 of its 160 px on a (37.5 %), but 60 % of a's 100 visible px
    # (30 % of a's original 200 px) -> skipped
    c = box_mask(shape, 0, 0, 10, 6) | box_mask(shape, 0, 30, 10, 40)
    id_map = paint_instances([a, b, c], *shape)
    assert set(np.unique(id_map)) == {0, 1, 2}
    assert (id_map[:, :10] == 1).all() and (id_map[:, 10:30] == 2).all()


def test_paint_instances_ignore_masks_and_many_ids():
    shape = (20, 20)
    crowd = box_mask(shape, 0, 0, 20, 5)
    obj = box_mask(shape, 0, 3, 5, 8)
    id_map = paint_instances([obj], *shape, ignore_masks=[crowd])
    assert (id_map[0:5, 3:8] == 1).all()  # the object wins over the crowd
    assert (id_map[10:, 0:5] == IGNORE_INDEX).all()
    assert (id_map[:, 8:] == NO_SEGMENT).all()
    # 300 one-pixel objects: ids 1..301 without 255
    pixels = [box_mask(shape, i // 20, i % 20, i // 20 + 1, i % 20 + 1)
              for i in range(300)]
    id_map = paint_instances(pixels, *shape)
    ids = np.unique(id_map)
    assert IGNORE_INDEX not in ids and ids.max() == 301 and ids.size == 301


# --------------------------------------------------------------- loading
def test_load_segment_id_map_errors():
    loader = LoadSegmentIdMap()
    with pytest.raises(ValueError, match='segment_source'):
        loader(dict(img_path='x.jpg'))
    results = dict(
        img_path='x.jpg', segment_source='instances', height=4, width=4,
        instances=[dict(id=7, iscrowd=0, segmentation={'bad': 1})])
    with pytest.raises(ValueError, match='annotation 7 of x.jpg'):
        loader(results)
    with pytest.raises(FileNotFoundError, match='missing.png'):
        loader(dict(img_path='x.jpg', segment_source='panoptic',
                    seg_map_path='/nonexistent/missing.png', segments=[]))


# ---------------------------------------------------------- geometric ops
def test_random_rescale_factor_of_original_size():
    np.random.seed(0)
    transform = RandomRescale(ratio_range=(0.5, 2.0))
    seg = np.repeat(np.arange(1, 9, dtype=np.int32), 10).reshape(8, 10)
    seg = np.repeat(seg, 10, axis=0)  # (80, 10) blocks of ids 1..8
    seg = np.tile(seg, (1, 6))  # (80, 60)
    ratios = []
    for _ in range(20):
        img = np.zeros((80, 60, 3), np.uint8)
        out = transform(dict(img=img, gt_seg_map=seg.copy(),
                             seg_fields=['gt_seg_map']))
        h, w = out['img'].shape[:2]
        assert out['gt_seg_map'].shape == (h, w)
        assert out['gt_seg_map'].dtype == np.int32
        assert set(np.unique(out['gt_seg_map'])) <= set(range(1, 9))
        assert abs(h / w - 80 / 60) < 0.05
        ratios.append(h / 80)
    assert 0.5 - 0.02 <= min(ratios) and max(ratios) <= 2.0 + 0.02
    assert max(ratios) - min(ratios) > 0.5  # really random
    with pytest.raises(ValueError, match='ratio_range'):
        RandomRescale(ratio_range=(2.0, 0.5))


def test_pad_to_min_size_pads_only_short_sides():
    transform = PadToMinSize(size=(512, 512), pad_val=0, seg_pad_val=0)
    img = np.full((300, 600, 3), 7, np.uint8)
    seg = np.full((300, 600), 3, np.int32)
    out = transform(dict(img=img, gt_seg_map=seg, seg_fields=['gt_seg_map']))
    assert out['img'].shape == (512, 600, 3)
    assert out['gt_seg_map'].shape == (512, 600)
    assert out['img_shape'] == out['pad_shape'] == (512, 600)
    assert (out['img'][300:] == 0).all() and (out['img'][:300] == 7).all()
    assert (out['gt_seg_map'][300:] == 0).all()
    assert (out['gt_seg_map'][:300] == 3).all()


# --------------------------------------------------------- object sampler
def test_object_sampler_binary_map_keeps_ignore():
    np.random.seed(1)
    seg = np.zeros((6, 8), np.int32)
    seg[0:2, 0:2] = 4
    seg[3:6, 3:8] = 300
    seg[5, 0] = IGNORE_INDEX
    seen = set()
    for _ in range(30):
        out = ObjectSampler()(dict(gt_seg_map=seg.copy()))
        binary, obj = out['gt_seg_map'], out['object_id']
        assert binary.dtype == np.uint8 and binary.shape == seg.shape
        assert obj in (4, 300)
        expected = np.where(seg == obj, 1, 0)
        expected[seg == IGNORE_INDEX] = IGNORE_INDEX
        np.testing.assert_array_equal(binary, expected)
        seen.add(obj)
    assert seen == {4, 300}


def test_object_sampler_returns_none_without_candidates():
    seg = np.zeros((5, 5), np.int32)
    seg[0] = IGNORE_INDEX
    assert ObjectSampler()(dict(gt_seg_map=seg)) is None
    seg[4, 4] = 2  # one pixel is enough by default ...
    assert ObjectSampler()(dict(gt_seg_map=seg))['object_id'] == 2
    # ... but not with a minimum area ratio
    assert ObjectSampler(min_area_ratio=0.1)(dict(gt_seg_map=seg)) is None
    with pytest.raises(ValueError, match='min_area_ratio'):
        ObjectSampler(min_area_ratio=1.5)


def test_object_sampler_is_uniform_over_segments_not_pixels():
    """Chi-square goodness of fit, fixed seed: areas differ 1 : 4000."""
    np.random.seed(2023)
    seg = np.zeros((100, 100), np.int32)
    seg[:40, :100] = 1  # 4000 px
    seg[50:70, :50] = 2  # 1000 px
    seg[80, 80] = 3  # 1 px
    seg[90:95, 90:95] = 7  # 25 px
    seg[99, :] = IGNORE_INDEX
    ids = [1, 2, 3, 7]
    sampler = ObjectSampler()
    draws = 4000
    counts = dict.fromkeys(ids, 0)
    for _ in range(draws):
        counts[sampler(dict(gt_seg_map=seg))['object_id']] += 1
    observed = np.array([counts[i] for i in ids])
    expected = draws / len(ids)
    chi2 = ((observed - expected)**2 / expected).sum()
    # 99.9 % quantile of chi2 with 3 dof is 16.27
    assert chi2 < stats.chi2.ppf(0.999, df=len(ids) - 1), observed
    assert observed.min() > 0.2 * draws  # far from area-weighted
