"""Training click simulation: the 0.6^n law, the clicks and the state."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage, stats
from torch import nn

import interformer.interaction.click_simulation as sim
from interformer.interaction import (
    REF_DEFINITE_BG,
    REF_DEFINITE_FG,
    REF_UNKNOWN,
    add_click_disk,
    next_click,
    update_by_prediction,
)
from interformer.interaction import clicks as clicks_module

STRIDE = 4


class StandInSegmentor(nn.Module):
    """Grows the positive click disks (too far, so negative clicks follow).

    Logits come at stride 4 like the real decode head; counters record how
    the simulation drives it.
    """

    def __init__(self, grow: int = 9, fail: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.grow = grow
        self.fail = fail
        self.num_extract = 0
        self.decode_modes = []

    def extract_image_feats(self, inputs):
        self.num_extract += 1
        return [inputs.mean(1, keepdim=True)]

    def decode_clicks(self, image_feats, ref_label, prev_mask=None, roi=None):
        assert not torch.is_grad_enabled()
        assert ref_label.dtype == torch.uint8 and ref_label.dim() == 4
        self.decode_modes.append(self.training)
        if self.fail:
            raise RuntimeError('decode failed')
        pos = (ref_label == REF_DEFINITE_FG).float()
        fg = F.max_pool2d(pos, self.grow, 1, self.grow // 2)
        fg = fg * (ref_label != REF_DEFINITE_BG).float()
        fg = F.avg_pool2d(fg, STRIDE)
        return torch.cat([0.5 - fg, fg - 0.5], dim=1)

    def upsample_logits(self, logits, size):
        return F.interpolate(
            logits, size=size, mode='bilinear', align_corners=False)


def _square_gt(batch=1, height=24, width=28):
    gt = torch.zeros(batch, 1, height, width, dtype=torch.long)
    gt[:, :, 4:13, 6:15] = 1  # 9x9 square: unique deepest point (8, 10)
    return gt


@torch.no_grad()
def _replay(seg, inputs, gt, seed, cfg):
    """The expected state, built directly from next_click (official)."""
    rng = np.random.default_rng(seed)
    n = sim.sample_num_iterations(rng, cfg['max_num_clicks'], cfg['gamma'])
    gt_np = gt[:, 0].numpy().astype(np.int64)
    gt_np[gt_np == 255] = -1
    batch, _, height, width = inputs.shape
    ref = np.full((batch, height, width), REF_UNKNOWN, np.uint8)
    clicks = [[] for _ in range(batch)]
    pred = np.zeros((batch, height, width), bool)
    for step in range(n + 1):
        if step > 0:
            logits = seg.decode_clicks(None, torch.from_numpy(ref)[:, None])
            logits = seg.upsample_logits(logits, (height, width))
            pred = logits.argmax(1).numpy().astype(bool)
            ref = update_by_prediction(ref, pred)
        for i in range(batch):
            click = next_click(
                gt_np[i],
                pred[i],
                clicks[i],
                'official',
                rng=rng,
                k=1.0 if step == 0 else 1.7)
            if click is not None:
                clicks[i].append(click)
                add_click_disk(ref[i], click.y, click.x, click.is_positive)
    return n, ref, clicks


def _geometric(max_n=20, gamma=0.6):
    w = gamma**np.arange(max_n + 1)
    return w / w.sum()


def test_sample_num_iterations_follows_geometric_law():
    rng = np.random.default_rng(0)
    draws = np.array([sim.sample_num_iterations(rng) for _ in range(20000)])
    assert draws.min() >= 0 and draws.max() <= 20
    p = _geometric()
    # bins 0..6 and a pooled tail
    observed = np.bincount(draws, minlength=21)
    obs = np.append(observed[:7], observed[7:].sum())
    exp = np.append(p[:7], p[7:].sum()) * len(draws)
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    assert abs(observed[0] / len(draws) - 0.4) < 0.015
    assert abs(draws.mean() - (np.arange(21) * p).sum()) < 0.05
    assert {sim.sample_num_iterations(rng, 0) for _ in range(50)} == {0}
    with pytest.raises(ValueError, match='gamma'):
        sim.sample_num_iterations(rng, 20, 0.0)
    with pytest.raises(ValueError, match='max_num_clicks'):
        sim.sample_num_iterations(rng, -1)


def test_simulation_runs_n_iterations_with_the_geometric_law():
    torch.manual_seed(0)
    seg = StandInSegmentor()
    inputs, gt = torch.zeros(1, 3, 16, 16), torch.zeros(1, 1, 16, 16).long()
    gt[..., 4:12, 4:12] = 1
    counts = []
    for _ in range(1500):
        before_extract, before = seg.num_extract, len(seg.decode_modes)
        sim.simulate_reference_labels(seg, inputs, gt, None)
        n = len(seg.decode_modes) - before
        # the backbone runs exactly once when there is any iteration
        assert seg.num_extract - before_extract == (1 if n else 0)
        counts.append(n)
    observed = np.bincount(counts, minlength=21)
    obs = np.append(observed[:5], observed[5:].sum())
    p = _geometric()
    exp = np.append(p[:5], p[5:].sum()) * len(counts)
    assert stats.chisquare(obs, exp).pvalue > 1e-3


def test_first_click_is_the_deepest_object_point():
    seg = StandInSegmentor()
    gt = _square_gt(batch=2)
    gt[1, 0, 20:, :] = 255  # ignore pixels elsewhere change nothing
    inputs = torch.zeros(2, 3, 24, 28)
    ref = sim.simulate_reference_labels(seg, inputs, gt,
                                        dict(max_num_clicks=0))
    assert ref.dtype == torch.uint8 and ref.shape == (2, 1, 24, 28)
    assert seg.num_extract == 0 and seg.decode_modes == []
    dist = ndimage.distance_transform_edt(np.pad(gt[0, 0].numpy() == 1,
                                                 1))[1:-1, 1:-1]
    y, x = np.unravel_index(dist.argmax(), dist.shape)
    assert (y, x) == (8, 10) and (dist == dist.max()).sum() == 1
    expected = np.full((24, 28), REF_UNKNOWN, np.uint8)
    add_click_disk(expected, y, x, True)
    for i in range(2):
        np.testing.assert_array_equal(ref[i, 0].numpy(), expected)
    assert (ref == REF_DEFINITE_FG).sum() == 2 * 81


def test_clicks_are_next_click_official_with_the_same_rng():
    cfg = dict(max_num_clicks=4, gamma=0.6, route='numpy')
    gt = _square_gt(batch=2, height=32, width=32)
    gt[1] = 0
    gt[1, 0, 10:30, 2:25] = 1
    gt[1, 0, 0:3, :] = 255
    inputs = torch.zeros(2, 3, 32, 32)
    seen_n = set()
    for seed in range(12):
        seg = StandInSegmentor()
        ref = sim.simulate_reference_labels(
            seg, inputs, gt, cfg, rng=np.random.default_rng(seed))
        n, expected, clicks = _replay(seg, inputs, gt, seed, cfg)
        assert len(seg.decode_modes) == 2 * n  # simulation + replay
        np.testing.assert_array_equal(ref[:, 0].numpy(), expected)
        seen_n.add(n)
        if n >= 2:
            signs = {c.is_positive for cs in clicks for c in cs}
            assert signs == {True, False}  # the stand-in over-grows
    assert max(seen_n) >= 2 and 0 in seen_n


def test_simulation_calls_the_evaluation_routine(monkeypatch):
    calls = []
    real = clicks_module.next_click

    def spy(gt, pred, clicks, protocol='ritm', rng=None, k=None):
        calls.append((protocol, k, len(clicks)))
        return real(gt, pred, clicks, protocol=protocol, rng=rng, k=k)

    monkeypatch.setattr(sim, 'next_click', spy)
    assert sim.next_click is spy and real.__module__ == clicks_module.__name__
    seg = StandInSegmentor()
    sim.simulate_reference_labels(seg, torch.zeros(1, 3, 24, 28), _square_gt(),
                                  dict(max_num_clicks=3,
                                       gamma=1e6,
                                       route='numpy'))  # P(n = 3) ~ 1
    assert [c[1] for c in calls] == [1.0, 1.7, 1.7, 1.7]
    assert {c[0] for c in calls} == {'official'}
    assert [c[2] for c in calls] == [0, 1, 2, 3]


def test_mode_restored_and_reproducible_under_torch_seed():
    seg = StandInSegmentor().train()
    inputs, gt = torch.zeros(2, 3, 24, 28), _square_gt(batch=2)
    cfg = dict(max_num_clicks=3, gamma=1e6)
    torch.manual_seed(3)
    a = sim.simulate_reference_labels(seg, inputs, gt, cfg)
    assert seg.training and seg.decode_modes == [False] * 3
    torch.manual_seed(3)
    b = sim.simulate_reference_labels(seg, inputs, gt, cfg)
    assert torch.equal(a, b)
    seg.eval()
    sim.simulate_reference_labels(seg, inputs, gt, cfg)
    assert not seg.training

    failing = StandInSegmentor(fail=True).train()
    with pytest.raises(RuntimeError, match='decode failed'):
        sim.simulate_reference_labels(failing, inputs, gt, cfg)
    assert failing.training


def test_bad_arguments_raise_clear_errors():
    seg = StandInSegmentor()
    inputs = torch.zeros(1, 3, 24, 28)
    with pytest.raises(ValueError, match='gt must have shape'):
        sim.simulate_reference_labels(seg, inputs, torch.zeros(1, 24, 28))
    with pytest.raises(ValueError, match='extra_click_k'):
        sim.simulate_reference_labels(seg, inputs, _square_gt(),
                                      dict(extra_click_k=0.5))
    with pytest.raises(ValueError, match='train_cfg'):
        sim.simulate_reference_labels(seg, inputs, _square_gt(), [1])
