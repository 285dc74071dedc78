"""The click test on the real GrabCut (50) and Berkeley (100) sets with
stand-in predictors whose NoC is known or derived independently here."""
import numpy as np
import pytest
from click_test_standins import (
    DiskPredictor,
    EmptyPredictor,
    MaskSequencePredictor,
)
from scipy import ndimage

from interformer.datasets.click_eval import BerkeleyDataset, GrabCutDataset
from interformer.evaluation import result_to_dict, run_click_test

DISK_RADIUS = 40
MAX_CLICKS = 20
THRS = (0.8, 0.85, 0.9)


@pytest.fixture(scope='module', params=['grabcut', 'berkeley'])
def real_set(request):
    cls = dict(grabcut=GrabCutDataset, berkeley=BerkeleyDataset)
    root = request.getfixturevalue(f'{request.param}_root')
    dataset = cls[request.param](root)
    samples = [dataset.get_sample(i) for i in range(len(dataset))]
    return dataset, samples


@pytest.mark.parametrize('protocol', ['ritm', 'official'])
def test_ground_truth_predictor_needs_one_click(real_set, protocol):
    dataset, samples = real_set
    predictor = MaskSequencePredictor([s['gt'] == 1 for s in samples],
                                      size_divisor=32)
    result = run_click_test(predictor, dataset, protocol, progress=False)
    summary = result.summary()
    for thr in ('80', '85', '90'):
        assert summary[f'NoC@{thr}'] == 1.0
        assert summary[f'NoF@{thr}'] == 0
    assert all(inst.ious == [1.0] * MAX_CLICKS for inst in result.instances)
    if protocol == 'ritm':  # early stop after the first click
        assert result.num_steps == len(dataset)
    else:  # every step runs; nothing is wrong, so no click after the first
        assert all(inst.num_steps == MAX_CLICKS and inst.clicks[1:] ==
                   [None] * (MAX_CLICKS - 1) for inst in result.instances)
    assert all(inst.clicks[0][2] for inst in result.instances)  # positive
    assert predictor.num_set_image == len(dataset)


def test_empty_predictor_fails_everywhere(real_set):
    dataset, _ = real_set
    result = run_click_test(EmptyPredictor(), dataset, 'ritm', progress=False)
    summary = result.summary()
    num = len(dataset)
    for thr in ('80', '85', '90'):
        assert summary[f'NoC@{thr}'] == MAX_CLICKS
        assert summary[f'NoF@{thr}'] == num
        assert summary[f'NoF_never@{thr}'] == num
        assert summary[f'success_ratio@{thr}'] == 0.0
    assert result.num_steps == num * MAX_CLICKS
    assert all(inst.ious == [0.0] * MAX_CLICKS for inst in result.instances)


# ------------------------------------------------ independent derivation
def _padded_dt(mask):
    """RITM: exact Euclidean DT of the error mask padded by one zero ring.

    scipy's float64 transform is used, not OpenCV's float32 one: OpenCV can
    be 1 ulp off depending on the pixel's column and thread split, which
    would decide exact ties arbitrarily (the robot user compares exact
    squared distances).
    """
    if not mask.any():
        return np.zeros(mask.shape, np.float64)
    padded = np.pad(mask, 1)
    return ndimage.distance_transform_edt(padded)[1:-1, 1:-1]


def _ritm_click(gt, pred, clicked):
    fn = (gt == 1) & ~pred
    fp = (gt == 0) & pred
    fn_dt = _padded_dt(fn) * ~clicked
    fp_dt = _padded_dt(fp) * ~clicked
    positive = fn_dt.max() > fp_dt.max()
    dist = fn_dt if positive else fp_dt
    y, x = np.argwhere(dist == dist.max())[0]  # first in raster order
    return int(y), int(x), bool(positive)


def _paint_disk(mask, grid, click, radius):
    """The disk predictor after one more click: its disk painted last."""
    yy, xx = grid
    y, x, positive = click
    mask = mask.copy()
    mask[(yy - y)**2 + (xx - x)**2 <= radius**2] = positive
    return mask


def _iou(gt, pred):
    valid = gt != -1
    inter = np.sum(pred & (gt == 1) & valid)
    return inter / np.sum((pred | (gt == 1)) & valid)


def _expected_disk_run(gt):
    clicked = np.zeros(gt.shape, bool)
    pred = np.zeros(gt.shape, bool)
    grid = np.ogrid[:gt.shape[0], :gt.shape[1]]
    clicks, ious = [], []
    while len(clicks) < MAX_CLICKS:
        click = _ritm_click(gt, pred, clicked)
        clicks.append(click)
        clicked[click[0], click[1]] = True
        pred = _paint_disk(pred, grid, click, DISK_RADIUS)
        ious.append(_iou(gt, pred))
        if ious[-1] >= 0.9:
            break
    return clicks, ious


def _noc(ious, thr):
    hits = [k + 1 for k, v in enumerate(ious) if v >= thr]
    return hits[0] if hits else MAX_CLICKS


def test_disk_predictor_matches_independent_derivation(real_set):
    dataset, samples = real_set
    # all 50 GrabCut objects, every other Berkeley one (test time)
    indices = range(0, len(dataset), 1 if len(dataset) <= 50 else 2)
    result = run_click_test(DiskPredictor(DISK_RADIUS), dataset, 'ritm',
                            indices=indices, progress=False)
    assert [inst.index for inst in result.instances] == list(indices)
    expected = [_expected_disk_run(samples[i]['gt']) for i in indices]
    for inst, (clicks, ious) in zip(result.instances, expected):
        assert inst.clicks == clicks, inst.name
        np.testing.assert_allclose(inst.ious[:len(ious)], ious, rtol=0,
                                   atol=1e-12)
        assert inst.num_steps == len(ious)
        assert inst.ious[len(ious):] == [ious[-1]] * (MAX_CLICKS - len(ious))
    summary = result.summary()
    for thr in THRS:
        nocs = [_noc(ious, thr) for _, ious in expected]
        key = f'{round(thr * 100)}'
        assert summary[f'NoC@{key}'] == pytest.approx(np.mean(nocs))
        assert summary[f'NoF@{key}'] == sum(n == MAX_CLICKS for n in nocs)
    # the stand-in is neither trivial nor hopeless, and clicks both ways
    assert 1 < summary['NoC@80'] < MAX_CLICKS
    signs = {c[2] for inst in result.instances for c in inst.clicks}
    assert signs == {True, False}


def test_official_protocol_is_seeded_per_instance(real_set):
    dataset, _ = real_set
    indices = range(0, len(dataset), 10)

    def run(seed, part=None):
        return run_click_test(
            DiskPredictor(DISK_RADIUS, size_divisor=32), dataset, 'official',
            seed=seed, indices=part or indices, progress=False)

    first = result_to_dict(run(3))
    first.pop('timing')
    again = result_to_dict(run(3))
    again.pop('timing')
    assert first == again
    # instances do not depend on which others ran before them (sharding)
    odd = run(3, list(indices)[1::2])
    assert [i.ious for i in odd.instances] == [
        inst['ious'] for inst in first['instances'][1::2]
    ]
    other = result_to_dict(run(4))
    assert [i['clicks'] for i in other['instances']] != [
        i['clicks'] for i in first['instances']
    ]
