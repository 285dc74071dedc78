"""Robot user: test vectors TV1-TV7 of evaluation.md §4, the official parity
fixtures' candidate sets, and properties against a naive full-image
transcription of both reference clickers."""
import os.path as osp

import cv2
import numpy as np
import pytest
from scipy import ndimage

from interformer.interaction import (
    Click,
    find_click_candidates,
    get_protocol,
    next_click,
)

SQRT2 = float(np.sqrt(2.0))


def reachable(gt, pred, clicks=(), protocol='official', k=None, seeds=200):
    """The set of clicks drawn over many seeds."""
    return {(c.y, c.x, c.is_positive)
            for c in (next_click(gt, pred, list(clicks), protocol,
                                 np.random.default_rng(s), k)
                      for s in range(seeds))}


def candidate_set(gt, pred, clicks=(), protocol='official', k=None):
    cand = find_click_candidates(gt, pred, list(clicks), protocol, k)
    return {(int(y), int(x)) for y, x in cand.coords}, cand


# ---------------------------------------------------------------- TV1-TV7
def test_tv1_object_fills_frame():
    gt, pred = np.ones((5, 5), np.int8), np.zeros((5, 5), bool)
    assert next_click(gt, pred, []) == Click(2, 2, True)
    cand = find_click_candidates(gt, pred, [], 'ritm')
    assert cand.distance == 3.0 and cand.fn_max == 3.0 and cand.fp_max == 0
    assert reachable(gt, pred) == {(2, 2, True)}


def test_tv2_centred_object():
    gt = np.zeros((5, 5), np.int8)
    gt[1:4, 1:4] = 1
    pred = np.zeros((5, 5), bool)
    assert next_click(gt, pred, []) == Click(2, 2, True)
    cand = find_click_candidates(gt, pred, [], 'official')
    assert cand.distance == 2.0
    assert cand.coords.tolist() == [[2, 2]]


def test_tv3_ties_inside_a_map():
    gt = np.zeros((6, 6), np.int8)
    gt[2:4, 1:5] = 1
    pred = np.zeros((6, 6), bool)
    block = {(y, x) for y in (2, 3) for x in (1, 2, 3, 4)}
    assert next_click(gt, pred, []) == Click(2, 1, True)
    ritm_set, ritm = candidate_set(gt, pred, protocol='ritm')
    assert ritm_set == block and ritm.coords[0].tolist() == [2, 1]
    off_set, off = candidate_set(gt, pred)
    assert off_set == block and off.distance == 1.0
    assert reachable(gt, pred) == {(y, x, True) for y, x in block}


def test_tv4_tie_between_maps_is_negative():
    gt = np.zeros((5, 5), np.int8)
    gt[0, 0] = 1
    pred = np.zeros((5, 5), bool)
    pred[4, 4] = True
    cand = find_click_candidates(gt, pred, [], 'ritm')
    assert cand.fn_max == cand.fp_max == 1.0
    assert next_click(gt, pred, []) == Click(4, 4, False)
    assert reachable(gt, pred) == {(4, 4, False)}


def test_tv5_fp_dominates():
    gt = np.zeros((5, 5), np.int8)
    gt[2, 2] = 1
    pred = np.zeros((5, 5), bool)
    pred[0:3, 0:3] = True
    cand = find_click_candidates(gt, pred, [], 'ritm')
    assert cand.fn_max == 0.0
    assert cand.distance == pytest.approx(1.41421, abs=1e-5)
    assert next_click(gt, pred, []) == Click(1, 1, False)
    assert reachable(gt, pred) == {(1, 1, False)}


def _tv6():
    gt = np.zeros((5, 5), np.int8)
    gt[1:4, 1:4] = -1
    gt[2, 2] = 1
    pred = np.zeros((5, 5), bool)
    pred[1:4, 1:4] = True
    return gt, pred


def test_tv6_ignore_band_ritm_degenerate_click():
    gt, pred = _tv6()
    cand = find_click_candidates(gt, pred, [], 'ritm')
    assert cand.fn_max == cand.fp_max == 0.0
    assert next_click(gt, pred, []) == Click(0, 0, False)


def test_tv6b_official_clicks_inside_the_ignore_band():
    gt, pred = _tv6()
    band = {(y, x) for y in range(1, 4) for x in range(1, 4)} - {(2, 2)}
    cands, cand = candidate_set(gt, pred)
    assert cands == band and not cand.is_positive and cand.distance == 1.0
    assert reachable(gt, pred) == {(y, x, False) for y, x in band}


def test_tv7_already_clicked_pixel():
    gt, pred = np.ones((5, 5), np.int8), np.zeros((5, 5), bool)
    clicks = [Click(2, 2, True)]
    ritm_set, ritm = candidate_set(gt, pred, clicks, 'ritm')
    assert ritm.distance == 2.0
    assert ritm_set == {(y, x)
                        for y in (1, 2, 3)
                        for x in (1, 2, 3)} - {(2, 2)}
    assert next_click(gt, pred, clicks) == Click(1, 1, True)
    corners = {(1, 1), (1, 3), (3, 1), (3, 3)}
    off_set, off = candidate_set(gt, pred, clicks)
    assert off_set == corners and off.distance == SQRT2
    assert reachable(gt, pred, clicks) == {(y, x, True) for y, x in corners}


def test_exact_ties_despite_float_rounding():
    # True distance sqrt(90) at (15, 9) and (16, 9); OpenCV's float32 DT
    # can round the two differently (it does with opencv 5.0 on AVX2), and
    # the reference code would then drop one of them. Ties are exact here.
    gt = np.ones((26, 32), np.int8)
    gt[[6, 8, 19], [6, 22, 18]] = 0
    pred = np.zeros(gt.shape, bool)
    cands, cand = candidate_set(gt, pred)
    assert cands == {(15, 9), (16, 9)}
    assert cand.distance == np.sqrt(90.0)
    assert next_click(gt, pred, []) == Click(15, 9, True)


# ------------------------------------------------------------- band k > 1
def test_candidate_band_k():
    gt, pred = np.ones((5, 5), np.int8), np.zeros((5, 5), bool)
    # max 3; 3 / 1.7 = 1.76: the 3x3 centre (distances 2 and 3) qualifies.
    inner = {(y, x) for y in (1, 2, 3) for x in (1, 2, 3)}
    assert candidate_set(gt, pred, k=1.7)[0] == inner
    assert reachable(gt, pred, k=1.7) == {(y, x, True) for y, x in inner}
    official_k = get_protocol('official', candidate_k=1.7)
    assert candidate_set(gt, pred, protocol=official_k)[0] == inner


# ------------------------------------------------ official parity fixtures
def test_official_candidates_match_parity_fixture(parity_fixture,
                                                  reference_dir):
    """Every fixture of the reference folder (tests/conftest.py)."""
    if parity_fixture is None:
        pytest.skip(f'no parity fixtures (*.npz) in {reference_dir}')
    data = np.load(parity_fixture)
    gt = data['gt'].astype(np.int16)
    gt[gt == 255] = -1
    preds, stored = data['pred'].astype(bool), data['click_candidates']
    clicks = []
    for step, (y, x, positive) in enumerate(data['clicks']):
        pred = np.zeros_like(preds[0]) if step == 0 else preds[step - 1]
        cand = find_click_candidates(gt, pred, clicks, 'official')
        expected = stored[stored[:, 0] == step][:, 1:]
        assert cand.coords.tolist() == expected.tolist()
        assert cand.is_positive == bool(positive)
        clicks.append(Click(int(y), int(x), bool(positive)))  # replay


# ------------------------------------- properties vs a naive transcription
def _naive_sq_dt(mask):
    """Exact squared distances (scipy EDT, float64) on the padded mask."""
    padded = np.pad(mask.astype(np.uint8), 1, mode='constant')
    return np.rint(ndimage.distance_transform_edt(padded)**2)[1:-1, 1:-1]


def naive_ritm(gt, pred, clicks):
    """RITM ``Clicker._get_next_click`` on the full image."""
    valid = gt != -1
    fn = (gt == 1) & ~pred & valid
    fp = (gt != 1) & pred & valid
    not_clicked = np.ones(gt.shape, bool)
    for c in clicks:
        not_clicked[c.y, c.x] = False
    fn_dt = _naive_sq_dt(fn) * not_clicked
    fp_dt = _naive_sq_dt(fp) * not_clicked
    positive = fn_dt.max() > fp_dt.max()
    dt = fn_dt if positive else fp_dt
    ys, xs = np.where(dt == dt.max())
    return Click(int(ys[0]), int(xs[0]), bool(positive))


def naive_official(gt, pred, clicks, k=1.0):
    """The official ``click()`` on the full image: the candidate set."""
    fn, fp = (gt == 1) & ~pred, (gt != 1) & pred
    for c in clicks:
        fn[c.y, c.x] = fp[c.y, c.x] = False
    fn_dt, fp_dt = _naive_sq_dt(fn), _naive_sq_dt(fp)
    positive = fn_dt.max() > fp_dt.max()
    dt = fn_dt if positive else fp_dt
    if dt.max() == 0:
        return None, None
    if k == 1.0:
        hits = dt == dt.max()
    else:  # sqrt(n) > sqrt(n_max) / k, exactly, for k = 1.7 = 17 / 10
        assert k == 1.7
        hits = dt * 289 > dt.max() * 100
    return bool(positive), set(zip(*map(list, np.nonzero(hits))))


def random_case(rng, with_clicks=True):
    h, w = rng.integers(1, 40 if rng.random() < 0.8 else 150, size=2)
    gt = (rng.random((h, w)) < rng.uniform(0.1, 0.9)).astype(np.int8)
    gt = cv2.dilate(gt.astype(np.uint8),
                    np.ones((3, 3), np.uint8),
                    iterations=int(rng.integers(0, 3))).astype(np.int8)
    gt[rng.random((h, w)) < 0.1] = -1
    pred = rng.random((h, w)) < rng.uniform(0.0, 1.0)
    n = int(rng.integers(0, 6)) if with_clicks else 0
    clicks = [
        Click(int(rng.integers(h)), int(rng.integers(w)),
              bool(rng.integers(2))) for _ in range(n)
    ]
    return gt, pred, clicks


def test_ritm_matches_naive_and_lands_on_right_error():
    rng = np.random.default_rng(1)
    for _ in range(300):
        gt, pred, clicks = random_case(rng)
        click = next_click(gt, pred, clicks, 'ritm')
        assert click == naive_ritm(gt, pred, clicks)
        cand = find_click_candidates(gt, pred, clicks, 'ritm')
        if cand.distance == 0:  # degenerate: nothing left to click
            assert click == Click(0, 0, False)
            continue
        assert (click.y, click.x) not in {(c.y, c.x) for c in clicks}
        value = gt[click.y, click.x]
        if click.is_positive:
            assert value == 1 and not pred[click.y, click.x]
        else:
            assert value == 0 and pred[click.y, click.x]


@pytest.mark.parametrize('k', [1.0, 1.7])
def test_official_matches_naive_and_lands_on_right_error(k):
    rng = np.random.default_rng(2)
    for _ in range(300):
        gt, pred, clicks = random_case(rng)
        positive, expected = naive_official(gt, pred, clicks, k)
        cand = find_click_candidates(gt, pred, clicks, 'official', k=k)
        if expected is None:
            assert cand is None
            assert next_click(gt, pred, clicks, 'official',
                              np.random.default_rng(0), k) is None
            continue
        got = {(int(y), int(x)) for y, x in cand.coords}
        assert cand.is_positive == positive and got == expected
        click = next_click(gt, pred, clicks, 'official',
                           np.random.default_rng(0), k)
        assert (click.y, click.x) in expected
        assert (click.y, click.x) not in {(c.y, c.x) for c in clicks}
        if click.is_positive:
            assert gt[click.y, click.x] == 1 and not pred[click.y, click.x]
        else:  # ignore counts as background for the official clicker
            assert gt[click.y, click.x] != 1 and pred[click.y, click.x]


def test_perfect_prediction_gives_no_official_click():
    rng = np.random.default_rng(3)
    for _ in range(20):
        gt, _, _ = random_case(rng, with_clicks=False)
        pred = gt == 1
        assert next_click(gt, pred, [], 'official', rng) is None
        assert next_click(gt, pred, [], 'ritm') == Click(0, 0, False)


def test_same_seed_same_click_and_seeds_cover_candidates():
    gt = np.zeros((30, 30), np.int8)
    gt[5:15, 5:25] = 1  # a 10x20 block: ties along the middle rows
    pred = np.zeros((30, 30), bool)
    cands, _ = candidate_set(gt, pred)
    assert len(cands) > 1
    draws = [
        next_click(gt, pred, [], 'official', np.random.default_rng(7))
        for _ in range(5)
    ]
    assert len(set(draws)) == 1
    drawn = (next_click(gt, pred, [], 'official', np.random.default_rng(s))
             for s in range(300))
    assert {(c.y, c.x) for c in drawn} == cands


def test_accepts_integer_pred_and_bool_gt():
    gt = np.zeros((6, 6), bool)
    gt[2:4, 1:5] = True
    pred = np.zeros((6, 6), np.uint8)
    assert next_click(gt, pred, []) == Click(2, 1, True)


def test_grabcut_mask_click_is_fast(grabcut_root):
    import time
    mask = cv2.imread(osp.join(grabcut_root, 'gt', '106024.png'),
                      cv2.IMREAD_GRAYSCALE)
    gt = np.zeros(mask.shape, np.int8)
    gt[mask > 128] = 1
    gt[mask == 128] = -1
    pred = gt == 1
    pred[:, :pred.shape[1] // 2] ^= True  # half-wrong prediction
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(20):
        next_click(gt, pred, [], 'official', rng)
        next_click(gt, np.zeros_like(pred), [], 'ritm')
    per_click = (time.perf_counter() - start) / 40
    assert per_click < 0.02  # ~1 ms measured; a loose regression guard


# --------------------------------------------------------------- errors
@pytest.mark.parametrize('gt, pred, clicks, match', [
    (np.zeros((4, 4), np.int8), np.zeros((4, 5), bool), [], 'shapes differ'),
    (np.zeros((2, 4, 4), np.int8), np.zeros((2, 4, 4), bool), [], '2-D'),
    (np.zeros((4, 4), np.float32), np.zeros((4, 4), bool), [], 'dtype'),
    (np.full((4, 4), 255, np.uint8), np.zeros((4, 4), bool), [], '255'),
    (np.zeros((4, 4), np.int8), np.zeros((4, 4), np.float32), [], 'threshold'),
    (np.zeros((4, 4), np.int8), np.full((4, 4), 2, np.uint8), [], '0 or 1'),
    (np.zeros((4, 4), np.int8), np.zeros(
        (4, 4), bool), [Click(4, 0, True)], 'outside'),
])
def test_bad_inputs_raise_one_clear_error(gt, pred, clicks, match):
    with pytest.raises(ValueError, match=match):
        next_click(gt, pred, clicks)


def test_bad_rng_k_and_clicks():
    gt, pred = np.ones((5, 5), np.int8), np.zeros((5, 5), bool)
    with pytest.raises(ValueError, match='rng'):
        next_click(gt, pred, [], 'official')
    with pytest.raises(TypeError, match='Generator'):
        next_click(gt, pred, [], 'official', rng=0)
    with pytest.raises(ValueError, match='k must be >= 1'):
        next_click(gt, pred, [], 'official', np.random.default_rng(0), k=0.5)
    with pytest.raises(ValueError, match="tie_break='random'"):
        next_click(gt, pred, [], 'ritm', k=1.7)
    with pytest.raises(TypeError, match='Click'):
        next_click(gt, pred, [(1, 1, True)])
    with pytest.raises(ValueError, match='valid names'):
        next_click(gt, pred, [], 'rittm')
    with pytest.raises(TypeError, match='integers'):
        Click(1.5, 2, True)
    with pytest.raises(ValueError, match='>= 0'):
        Click(-1, 2, True)
