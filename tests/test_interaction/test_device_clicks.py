"""The device click simulation against the numpy reference ``next_click``.

Random masks, predictions and earlier clicks; each case compares the
device routine with ``next_click(..., 'official', rng, k)`` for a generator
in the same state. Runs on the CPU and, when available, on CUDA (where the
loop body is also checked for host synchronisation).
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from interformer.interaction import (
    REF_UNKNOWN,
    Click,
    add_click_disk,
    advance_reference_label,
    next_click,
    padded_distance_transform,
    update_by_prediction,
)
from interformer.interaction import click_simulation as sim
from interformer.interaction import device_clicks as dc

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def _blobs(rng, shape, fill):
    """(H, W) bool: a smoothed random field above a threshold."""
    field = rng.random(shape)
    t = torch.from_numpy(field)[None, None]
    smooth = F.avg_pool2d(t, 5, 1, 2, count_include_pad=False)[0, 0]
    return (smooth.numpy() < np.quantile(smooth, fill))


def _case(rng, height, width):
    """Random (gt int64 with -1 ignore, pred bool, clicks) of one sample."""
    gt = _blobs(rng, (height, width), rng.uniform(0.05, 0.6)).astype(np.int64)
    if rng.random() < 0.3:
        gt[_blobs(rng, (height, width), 0.1)] = -1
    kind = rng.integers(4)
    if kind == 0:
        pred = np.zeros((height, width), bool)
    elif kind == 1:
        pred = gt == 1  # nothing wrong (ignore is background): no click
    else:
        pred = _blobs(rng, (height, width), rng.uniform(0.05, 0.6))
    clicks = []
    for _ in range(int(rng.integers(0, 4))):
        y, x = int(rng.integers(height)), int(rng.integers(width))
        clicks.append(Click(y, x, bool(rng.integers(2))))
    return gt, pred, clicks


@pytest.mark.parametrize('device', DEVICES)
def test_squared_edt_matches_the_padded_opencv_transform(device):
    rng = np.random.default_rng(0)
    for trial in range(60):
        height, width = (int(v) for v in rng.integers(1, 48, 2))
        mask = rng.random((height, width)) < rng.random()
        if trial % 3 == 0:
            mask = _blobs(rng, (height, width), rng.uniform(0.3, 0.9))
        expected = np.rint(
            padded_distance_transform(mask).astype(np.float64)**2)
        got = dc.squared_edt(torch.from_numpy(mask)[None].to(device))
        np.testing.assert_array_equal(got[0].cpu().numpy(), expected)
    # wide rows take the int64 route
    mask = np.ones((5, 1100), bool)
    mask[2, ::97] = False
    expected = np.rint(padded_distance_transform(mask).astype(np.float64)**2)
    got = dc.squared_edt(torch.from_numpy(mask)[None].to(device))
    np.testing.assert_array_equal(got[0].cpu().numpy(), expected)


def test_lemire_index_is_numpy_integers_including_rejections():
    counts = [1, 2, 3, 7, 1000, 262144, 1610612736]  # the last rejects 25 %
    rejected = 0
    for seed in range(400):
        for count in counts:
            expected = np.random.default_rng(seed).integers(count)
            words = dc.draw_words(np.random.default_rng(seed), (1, ))
            got = dc.lemire_index(words, torch.tensor([count]))
            prods = words[0] * count
            accepted = (prods & 0xFFFFFFFF) >= (2**32 - count) % count
            if not bool(accepted.any()):
                continue  # numpy needed more words than are drawn
            rejected += int(not accepted[0])
            assert int(got) == expected, (seed, count)
    assert rejected > 50
    # counts of a 512x512 image: words beyond the first almost never used
    words = dc.draw_words(np.random.default_rng(0), (10000, ))
    assert torch.equal(
        dc.lemire_index(words, torch.full((10000, ), 262144)),
        (words[:, 0] * 262144) >> 32)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('k', [1.0, 1.7])
def test_next_clicks_equal_next_click_official(device, k):
    rng = np.random.default_rng(int(k * 10))
    clicked_none = placed = 0
    for _ in range(12):
        height, width = (int(v) for v in rng.integers(8, 40, 2))
        batch = 4
        cases = [_case(rng, height, width) for _ in range(batch)]
        seeds = rng.integers(0, 2**32, batch)
        expected = [
            next_click(gt, pred, clicks, 'official',
                       rng=np.random.default_rng(seed), k=k)
            for (gt, pred, clicks), seed in zip(cases, seeds)
        ]
        words = torch.cat([
            dc.draw_words(np.random.default_rng(seed), (1, ))
            for seed in seeds
        ])
        fg = torch.from_numpy(np.stack([c[0] == 1 for c in cases]))
        pred = torch.from_numpy(np.stack([c[1] for c in cases]))
        clicked = torch.zeros_like(fg)
        for i, (_, _, clicks) in enumerate(cases):
            for c in clicks:
                clicked[i, c.y, c.x] = True
        floor = dc.band_floor_table(k, height, width, device)
        y, x, positive, valid = (t.cpu() for t in dc.next_clicks(
            fg.to(device), pred.to(device), clicked.to(device), floor,
            words.to(device)))
        for i, click in enumerate(expected):
            if click is None:
                clicked_none += 1
                assert not valid[i]
                continue
            placed += 1
            assert valid[i]
            assert (int(y[i]), int(x[i]), bool(positive[i])) == (
                click.y, click.x, click.is_positive)
    assert clicked_none > 0 and placed > 20


class _FakeSegmentor(nn.Module):
    """Predicts the dark pixels, pulled towards the clicked disks."""

    def extract_image_feats(self, inputs):
        return inputs[:, :1]

    def decode_clicks(self, feats, ref):
        ref = ref.float()
        score = -feats[:, 0] + 1.5 * (ref[:, 0] - REF_UNKNOWN)
        score = F.avg_pool2d(score[:, None], 3, 1, 1)[:, 0]
        return torch.stack([torch.zeros_like(score), score], dim=1)

    def upsample_logits(self, logits, size):
        return F.interpolate(logits, size=size, mode='bilinear',
                             align_corners=False)


def _numpy_replay(seg, inputs, gt, seeds, cfg):
    """The simulation with next_click, generator (step, sample) seeded."""
    gt_np = gt[:, 0].numpy().astype(np.int64)
    gt_np[gt_np == 255] = -1
    steps, batch = seeds.shape
    height, width = gt_np.shape[-2:]
    ref = np.full((batch, height, width), REF_UNKNOWN, np.uint8)
    pred = np.zeros((batch, height, width), bool)
    clicks = [[] for _ in range(batch)]
    for step in range(steps):
        if step:
            logits = seg.decode_clicks(seg.extract_image_feats(inputs),
                                       torch.from_numpy(ref)[:, None])
            pred = (logits[:, 1] > logits[:, 0]).numpy()
            ref = update_by_prediction(ref, pred)
        k = cfg['first_click_k'] if step == 0 else cfg['extra_click_k']
        for i in range(batch):
            click = next_click(gt_np[i], pred[i], clicks[i], 'official',
                               rng=np.random.default_rng(seeds[step, i]),
                               k=k)
            if click is not None:
                clicks[i].append(click)
                add_click_disk(ref[i], click.y, click.x, click.is_positive,
                               cfg['inner_radius'])
    return ref


@pytest.mark.parametrize('device', DEVICES)
def test_whole_simulation_matches_the_numpy_loop(device):
    rng = np.random.default_rng(3)
    cfg = dict(sim.DEFAULT_SIMULATION_CFG)
    seg = _FakeSegmentor()
    batch, height, width = 3, 36, 44
    inputs = torch.from_numpy(rng.normal(size=(batch, 3, height, width)))
    gt = torch.from_numpy(np.stack([
        _blobs(rng, (height, width), 0.35) for _ in range(batch)
    ]).astype(np.int64))[:, None]
    gt[0, 0, :4] = 255
    seeds = rng.integers(0, 2**32, (6, batch))
    words = torch.stack([
        torch.cat([
            dc.draw_words(np.random.default_rng(s), (1, )) for s in row
        ]) for row in seeds
    ])
    expected = _numpy_replay(seg, inputs.float(), gt, seeds, cfg)
    got = dc.run_clicks(seg, inputs.float().to(device), gt.to(device), cfg,
                        words)
    assert got.device.type == device and got.dtype == torch.uint8
    np.testing.assert_array_equal(got[:, 0].cpu().numpy(), expected)
    assert (expected != REF_UNKNOWN).mean() > 0.3  # the loop did something


def test_route_switch_and_reproducibility():
    seg = _FakeSegmentor()
    rng = np.random.default_rng(5)
    inputs = torch.from_numpy(rng.normal(size=(2, 3, 24, 28))).float()
    gt = torch.from_numpy(np.stack([_blobs(rng, (24, 28), 0.4)] * 2)).long()
    gt = gt[:, None]
    outs = {}
    for route in sim.ROUTES:
        cfg = dict(route=route)
        a = sim.simulate_reference_labels(seg, inputs, gt, cfg,
                                          rng=np.random.default_rng(9))
        b = sim.simulate_reference_labels(seg, inputs, gt, cfg,
                                          rng=np.random.default_rng(9))
        assert torch.equal(a, b)
        outs[route] = a
    # n and the first click's word come first in both routes: with n = 0
    # (max_num_clicks=0) the first click is the same.
    cfg0 = dict(max_num_clicks=0)
    firsts = [
        sim.simulate_reference_labels(seg, inputs[:1], gt[:1],
                                      dict(cfg0, route=route),
                                      rng=np.random.default_rng(11))
        for route in sim.ROUTES
    ]
    assert torch.equal(firsts[0], firsts[1])
    with pytest.raises(ValueError, match='route'):
        sim.simulate_reference_labels(seg, inputs, gt, dict(route='gpu'))


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_click_loop_does_not_synchronise_on_cuda():
    rng = np.random.default_rng(1)
    fg = torch.from_numpy(_blobs(rng, (64, 64), 0.4)[None]).cuda()
    pred = torch.zeros_like(fg)
    clicked = torch.zeros_like(fg)
    ref = torch.full(fg.shape, REF_UNKNOWN, dtype=torch.uint8, device='cuda')
    floor = dc.band_floor_table(1.7, 64, 64, 'cuda')
    words = dc.draw_words(rng, (1, )).cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        for _ in range(3):
            clicks = dc.next_clicks(fg, pred, clicked, floor, words)
            dc.mark_clicked(clicked, clicks)
            ref = advance_reference_label(ref, pred, clicks, 5)
            pred = ref >= 3
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert int((ref != REF_UNKNOWN).sum()) > 0
