"""IoU, NoC, NoF and mIoU curve: TV5, TV6 and TV10 of evaluation.md, the
official parity fixture IoUs, and the documented edge cases."""

import numpy as np
import pytest

from interformer.evaluation.metrics import (
    iou,
    miou_curve,
    noc,
    nof_never_reached,
    nof_ritm,
    summarize,
    thr_key,
)

# TV10: RITM-style early-stopped lists.
TV10 = [[0.80, 0.86, 0.91], [0.30] * 20, [0.95], [0.5] * 19 + [0.92]]


def test_tv5_iou():
    gt = np.zeros((5, 5), np.int8)
    gt[2, 2] = 1
    pred = np.zeros((5, 5), bool)
    pred[0:3, 0:3] = True
    assert iou(gt, pred) == pytest.approx(1 / 9)


def test_tv6_ignore_band():
    gt = np.zeros((5, 5), np.int8)
    gt[1:4, 1:4] = -1
    gt[2, 2] = 1
    pred = np.zeros((5, 5), bool)
    pred[1:4, 1:4] = True
    assert iou(gt, pred) == 1.0
    assert iou(np.where(gt == -1, 0, gt), pred) == pytest.approx(1 / 9)
    gt255 = np.where(gt == -1, 255, gt).astype(np.uint8)  # TV6b coding
    assert iou(gt255, pred, ignore_label=255) == 1.0


def test_iou_matches_official_parity_fixture(parity_fixture, reference_dir):
    """Every fixture of the reference folder (tests/conftest.py)."""
    if parity_fixture is None:
        pytest.skip(f'no parity fixtures (*.npz) in {reference_dir}')
    data = np.load(parity_fixture)
    for pred, expected in zip(data['pred'], data['iou']):
        assert iou(data['gt'], pred,
                   ignore_label=255) == pytest.approx(expected, abs=1e-12)


def test_iou_edge_cases():
    gt = np.zeros((3, 3), np.int8)
    assert iou(gt, np.zeros((3, 3), bool)) == 1.0  # documented: empty union
    assert iou(gt, np.ones((3, 3), np.uint8)) == 0.0
    with pytest.raises(ValueError, match='same shape'):
        iou(gt, np.zeros((3, 4), bool))
    with pytest.raises(ValueError, match='0/1'):
        iou(gt, np.full((3, 3), 0.7))
    with pytest.raises(ValueError, match='ignore_label'):
        iou(gt, gt.astype(bool), ignore_label=0)


def test_tv10_noc():
    assert [noc(x, 0.80) for x in TV10] == [1, 20, 1, 20]
    assert [noc(x, 0.85) for x in TV10] == [2, 20, 1, 20]
    assert [noc(x, 0.90) for x in TV10] == [3, 20, 1, 20]
    assert noc([0.5, 0.95], 0.9, max_clicks=1) == 1  # truncated to budget


def test_tv10_failure_counts_differ():
    assert nof_ritm(TV10, 0.85) == nof_ritm(TV10, 0.90) == 2  # B and D
    assert nof_never_reached(TV10, 0.85) == 1  # only B
    assert nof_never_reached(TV10, 0.90) == 1


def test_tv10_summary_ritm_and_padded_lists_agree():
    summary = summarize(TV10)
    assert summary['num_instances'] == 4 and summary['max_clicks'] == 20
    assert summary['NoC@80'] == pytest.approx(10.50)
    assert summary['NoC@85'] == pytest.approx(10.75)
    assert summary['NoC@90'] == pytest.approx(11.00)
    assert summary['NoF@85'] == summary['NoF@90'] == 2
    assert summary['NoF_never@90'] == 1
    assert summary['success_ratio@85'] == pytest.approx(0.75)
    assert summary['NoC_std@80'] == pytest.approx(np.std([1, 20, 1, 20]))
    # InterFormer-style full 20-lists (A padded with 0.91, C with 0.95).
    full = [x + [x[-1]] * (20 - len(x)) for x in TV10]
    official = summarize(full, iou_thrs=(0.85, 0.9))
    for key in ('NoC@85', 'NoC@90', 'success_ratio@85', 'NoF@90'):
        assert official[key] == summary[key]
    assert official['mIoU_curve'] == summary['mIoU_curve']


def test_miou_curve_pads_with_last_iou():
    curve = miou_curve([[0.5, 0.7], [0.2, 0.4, 0.6, 0.8]], max_clicks=5)
    np.testing.assert_allclose(curve, [0.35, 0.55, 0.65, 0.75, 0.75])
    assert miou_curve([[0.1] * 30], max_clicks=20).shape == (20, )
    summary = summarize([[0.5, 0.7], [0.2, 0.4, 0.6, 0.8]], max_clicks=5)
    assert summary['mIoU@1'] == pytest.approx(0.35)
    assert summary['mIoU@5'] == pytest.approx(0.75)
    assert 'mIoU@10' not in summary


def test_metric_input_errors():
    with pytest.raises(ValueError, match='empty'):
        summarize([])
    with pytest.raises(ValueError, match='non-empty 1-D'):
        noc([], 0.9)
    with pytest.raises(ValueError, match='nan'):
        miou_curve([[0.5, float('nan')]])
    with pytest.raises(ValueError, match='max_clicks'):
        noc([0.5], 0.9, max_clicks=0)


def test_thr_key():
    assert [thr_key(t)
            for t in (0.8, 0.85, 0.9, 0.875)] == ['80', '85', '90', '87.5']
