"""Numerical parity with the official InterFormer (reference fixtures).

Every ``*.npz`` in the reference folder (``INTERFORMER_REFERENCE_DIR`` or
``<repo>/../shared/reference``) is checked: the model is built from sizes
derived from the fixture's weights, loaded strictly, and compared on the
backbone, the neck, the heads, teacher-forced clicks, zoom-in and a
free-running click loop. See the reference README for the tolerances.
"""
import glob
import os
import os.path as osp

import numpy as np
import pytest
import torch
from parity_utils import build_from_fixture, load_fixture

_REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# Same rule as the ``reference_dir`` fixture of tests/conftest.py; needed at
# collection time to parametrise over the files.
_REF_DIR = os.environ.get(
    'INTERFORMER_REFERENCE_DIR',
    osp.join(
        os.environ.get('INTERFORMER_SHARED_DIR',
                       osp.join(osp.dirname(_REPO), 'shared')), 'reference'))
FIXTURES = sorted(glob.glob(osp.join(_REF_DIR, '*.npz')))

FEAT_TOL = dict(atol=1e-4, rtol=1e-4)
LOGIT_TOL = dict(atol=2e-4, rtol=1e-4)
MARGIN = 1e-3  # pred compared only where the stored |l1 - l0| >= MARGIN
IGNORE = 255


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def _iou(gt: np.ndarray, pred: np.ndarray) -> float:
    """Foreground IoU on the padded canvas, 255 ignored (mmseg)."""
    valid = gt != IGNORE
    obj = (gt == 1) & valid
    pred = pred.astype(bool) & valid
    return float((pred & obj).sum()) / float((pred | obj).sum())


class Case:
    """A fixture, our model for it and our backbone output (computed once)."""

    def __init__(self, path: str) -> None:
        self.name = osp.basename(path)
        self.arrays = load_fixture(path)
        self.model = build_from_fixture(self.arrays, _REPO)
        captured = {}
        hook = self.model.backbone.fpn.register_forward_pre_hook(
            lambda module, args: captured.setdefault('vit', args[0]))
        with torch.no_grad():
            self.feats = self.model.extract_image_feats(
                _t(self.arrays['input'])[None])
        hook.remove()
        self.vit_out = captured['vit']
        self.stored_feats = [
            _t(self.arrays[f'fpn_{i}'])[None] for i in range(4)
        ]
        self.canvas = tuple(int(v) for v in self.arrays['pad_shape'])

    def ref(self, key: str, step: int) -> torch.Tensor:
        return _t(self.arrays[key][step])[None, None]

    def check_pred_and_iou(self, pred, stored_pred, margin, stored_iou,
                           what: str) -> None:
        sure = margin >= MARGIN
        assert np.array_equal(pred[sure], stored_pred[sure]), what
        iou = _iou(self.arrays['gt'], pred)
        if np.array_equal(pred, stored_pred):
            assert iou == pytest.approx(stored_iou, abs=1e-12), what
        else:
            assert iou == pytest.approx(stored_iou, abs=1e-3), what


@pytest.fixture(scope='module', params=FIXTURES or [None],
                ids=[osp.basename(p) for p in FIXTURES] or ['none'])
def case(request):
    if request.param is None:
        pytest.skip(f'no parity fixtures (*.npz) in {_REF_DIR}')
    return Case(request.param)


def test_backbone_pyramid(case):
    torch.testing.assert_close(
        case.vit_out[0], _t(case.arrays['vit_out']), **FEAT_TOL)
    for ours, stored in zip(case.feats, case.stored_feats):
        torch.testing.assert_close(ours, stored, **FEAT_TOL)


def test_neck_and_auxiliary_head_first_click(case):
    model = case.model
    with torch.no_grad():
        outs = model.neck(case.stored_feats, case.ref('ref_label', 0))
        aux = model.auxiliary_head(list(outs))
    for i, out in enumerate(outs):
        torch.testing.assert_close(
            out[0], _t(case.arrays[f'neck_step1_{i}']), **FEAT_TOL)
    torch.testing.assert_close(
        aux[0], _t(case.arrays['aux_logits_step1']), **LOGIT_TOL)


@pytest.mark.parametrize('features', ['stored', 'ours'])
def test_teacher_forced_clicks(case, features):
    arrays, model = case.arrays, case.model
    feats = case.stored_feats if features == 'stored' else case.feats
    for step in range(len(arrays['clicks'])):
        with torch.no_grad():
            logits = model.decode_clicks(feats, case.ref('ref_label', step))
            up = model.upsample_logits(logits, case.canvas)
        torch.testing.assert_close(
            logits[0], _t(arrays['decode_logits'][step]), **LOGIT_TOL)
        torch.testing.assert_close(
            up[0], _t(arrays['logits_up'][step]), **LOGIT_TOL)
        stored_up = arrays['logits_up'][step]
        case.check_pred_and_iou(
            up[0].argmax(0).numpy(), arrays['pred'][step],
            np.abs(stored_up[1] - stored_up[0]), arrays['iou'][step],
            f'step {step}')


def _clicker_gt(gt: np.ndarray) -> np.ndarray:
    """The official loader's gt (1 object, 0 background, 255 ignore) in
    the clicker's coding (-1 ignore). The 'official' protocol then treats
    ignore pixels as background (FP = gt != 1), as the official
    ``ClickSegmentor`` does. (Mapping on the uint8 array itself would turn
    -1 back into 255.)"""
    out = gt.astype(np.int64)
    out[gt == IGNORE] = -1
    return out


def _candidate_api():
    try:
        from interformer.interaction.clicks import Click, find_click_candidates
    except ImportError:
        return None
    return Click, find_click_candidates


def _free_run(case, model, prefix: str, check_candidates: bool):
    """Replay the stored clicks from an all-unknown map with our own
    predictions; check the reference maps, logits, preds and IoUs."""
    from interformer.interaction.reference_label import (
        add_click_disk,
        new_reference_label,
        update_by_prediction,
    )
    arrays = case.arrays
    api = _candidate_api() if check_candidates else None
    gt_clicker = _clicker_gt(arrays['gt'])
    ref = new_reference_label(*case.canvas)
    pred = np.zeros(case.canvas, dtype=bool)
    # Pixels where one of our preds took the other side of a near tie; the
    # reference maps may differ there (and only there).
    flipped = np.zeros(case.canvas, dtype=bool)
    clicks = []
    for step, (y, x, positive) in enumerate(arrays['clicks'].tolist()):
        if api is not None:
            click_cls, find = api
            found = find(gt_clicker, pred, clicks, protocol='official')
            rows = arrays['click_candidates']
            expected = rows[rows[:, 0] == step][:, 1:]
            assert found is not None and found.is_positive == bool(positive)
            assert np.array_equal(found.coords, expected), f'step {step}'
            clicks.append(click_cls(y, x, bool(positive)))
        if step > 0:
            ref = update_by_prediction(ref, pred)
        add_click_disk(ref, y, x, bool(positive))
        same = ref == arrays[prefix + 'ref_label'][step]
        assert same[~flipped].all(), f'{prefix}ref_label step {step}'
        # A near-tie pixel that went the other way earlier changes the
        # network's input (its stride-4 click embedding, then every token
        # through attention), so from there on the logits are compared on
        # the official input (teacher-forced) and the chain continues.
        ref_in = ref if same.all() else arrays[prefix + 'ref_label'][step]
        prev = None if step == 0 else torch.from_numpy(pred)[None, None]
        with torch.no_grad():
            logits = model.decode_clicks(case.feats,
                                         _t(ref_in)[None, None],
                                         prev_mask=prev)
            up = model.upsample_logits(logits, case.canvas)[0]
        torch.testing.assert_close(
            logits[0], _t(arrays[prefix + 'decode_logits'][step]),
            **LOGIT_TOL)
        pred = up.argmax(0).numpy().astype(bool)
        stored = arrays[prefix + 'decode_logits'][step][None]
        stored_up = model.upsample_logits(_t(stored), case.canvas)[0]
        case.check_pred_and_iou(pred, arrays[prefix + 'pred'][step],
                                (stored_up[1] - stored_up[0]).abs().numpy(),
                                arrays[prefix + 'iou'][step],
                                f'{prefix}step {step}')
        flipped |= pred != arrays[prefix + 'pred'][step].astype(bool)
    return update_by_prediction(ref, pred), flipped


def test_free_running_click_loop(case):
    final, flipped = _free_run(case, case.model, '', check_candidates=True)
    assert flipped.sum() <= 2 * len(case.arrays['clicks'])
    assert np.array_equal(final[~flipped],
                          case.arrays['ref_label_final'][~flipped])
    if _candidate_api() is None:
        pytest.skip('interformer.interaction.clicks not available: '
                    'candidate sets not checked')


def test_zoom_in(case):
    arrays = case.arrays
    if 'zoom/roi' not in arrays:
        pytest.skip(f'{case.name} has no zoom-in run')
    zoom = build_from_fixture(arrays, _REPO, 'ClickSegmentorZoomIn')
    for step in range(1, len(arrays['zoom/roi'])):
        roi = zoom.compute_roi(
            case.feats, case.ref('zoom/ref_label', step),
            _t(arrays['zoom/pred'][step - 1])[None, None])
        assert roi.tolist() == [arrays['zoom/roi'][step].tolist()]
    _free_run(case, zoom, 'zoom/', check_candidates=False)


def test_clicker_gt_maps_the_ignore_band():
    """A fixture gt with the official loader's 255 band reaches the clicker
    as -1 (counted as background by the 'official' protocol), on any numpy
    casting rule."""
    from interformer.interaction.clicks import find_click_candidates
    gt = np.zeros((12, 12), np.uint8)
    gt[3:9, 3:9] = 1
    gt[2, 2:10] = IGNORE
    mapped = _clicker_gt(gt)
    assert mapped.dtype == np.int64 and set(np.unique(mapped)) == {-1, 0, 1}
    pred = np.zeros_like(gt, dtype=bool)
    pred[2, 2:10] = True  # predicted on the band only
    cand = find_click_candidates(mapped, pred, [], 'official')
    assert cand.is_positive  # the object is missed; the band is no object
