"""The per-instance click loop on tiny synthetic objects: protocol switches,
canvas IoU, timing split, sharding and the backbone-once rule."""
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click_test_standins import (
    DiskPredictor,
    MaskSequencePredictor,
    StandInPredictor,
)

from interformer.apis import InterFormerPredictor, Prediction
from interformer.evaluation import (
    evaluate_instance,
    get_protocol,
    instance_rng,
    run_click_test,
    shard_indices,
)
from interformer.evaluation.click_test import early_stop_threshold


class ListDataset:
    """``get_sample`` over in-memory (image, gt) pairs."""

    def __init__(self, gts, seed=0):
        rng = np.random.default_rng(seed)
        self.samples = [
            dict(image=rng.integers(0, 256, (*gt.shape, 3), np.uint8),
                 gt=gt, name=f'obj{i}') for i, gt in enumerate(gts)
        ]

    def __len__(self):
        return len(self.samples)

    def get_sample(self, index):
        return self.samples[index]


def _square(h=40, w=50, top=10, left=12, size=16):
    gt = np.zeros((h, w), np.int8)
    gt[top:top + size, left:left + size] = 1
    return gt


def test_ritm_stops_early_and_pads_the_iou_list():
    gt = _square()
    result = evaluate_instance(MaskSequencePredictor([gt == 1]), gt[..., None]
                               .repeat(3, 2).astype(np.uint8), gt, 'ritm')
    assert result.num_steps == 1 and len(result.ious) == 20
    assert result.clicks == [(17, 19, True)]  # deepest point, first in raster
    # an override budget and thresholds above the early stop keep NoC exact
    protocol = get_protocol('ritm', max_clicks=5, iou_thrs=(0.85, 0.95))
    assert early_stop_threshold(protocol) == 0.95
    assert early_stop_threshold(get_protocol('official')) is None


def test_disk_run_by_hand():
    """A 10x10 object and radius-3 disks: the IoU grows click by click."""
    gt = np.zeros((20, 20), np.int8)
    gt[5:15, 5:15] = 1
    image = np.zeros((20, 20, 3), np.uint8)
    result = evaluate_instance(DiskPredictor(radius=3), image, gt, 'ritm')
    assert result.clicks[0] == (9, 9, True)
    assert result.ious[0] == pytest.approx(29 / 100)  # disk of 29 px
    assert all(c[2] for c in result.clicks[:3])
    assert result.ious[1] > result.ious[0]


class PaddingPredictor(StandInPredictor):
    """Predicts the object plus the whole padding of the canvas."""

    def __init__(self, gt):
        super().__init__(size_divisor=32)
        self.gt = gt

    def canvas_mask(self):
        mask = np.ones(self.canvas_shape, bool)
        mask[:self.gt.shape[0], :self.gt.shape[1]] = self.gt == 1
        return mask


def test_official_scores_on_the_padded_canvas():
    gt = _square(h=40, w=50)  # canvas 64 x 64
    image = np.zeros((40, 50, 3), np.uint8)
    ritm = evaluate_instance(PaddingPredictor(gt), image, gt, 'ritm')
    assert ritm.ious[0] == 1.0  # the image only: a perfect mask
    official = evaluate_instance(PaddingPredictor(gt), image, gt, 'official',
                                 rng=instance_rng(0, 0))
    pad = 64 * 64 - 40 * 50
    assert official.ious[0] == pytest.approx(256 / (256 + pad))
    # the robot then clicks the padding (negative), on the canvas
    y, x, positive = official.clicks[1]
    assert not positive and (y >= 40 or x >= 50)


def test_official_uses_argmax_mask_and_ritm_the_probability():

    class Disagreeing(StandInPredictor):

        def predict(self, *, on_canvas=False):
            shape = self.canvas_shape if on_canvas else self.image_shape
            return Prediction(mask=np.ones(shape, bool),
                              prob=np.full(shape, 0.45, np.float32))

    gt = _square()
    image = np.zeros((*gt.shape, 3), np.uint8)
    ritm = evaluate_instance(Disagreeing(), image, gt, 'ritm')
    assert ritm.ious[0] == 0.0  # 0.45 <= 0.49
    official = evaluate_instance(Disagreeing(), image, gt, 'official',
                                 rng=instance_rng(0, 0))
    assert official.ious[0] == pytest.approx(256 / (40 * 50))


class SlowPredictor(StandInPredictor):
    ENCODE_S = 0.05
    DECODE_S = 0.005

    def set_image(self, image):
        time.sleep(self.ENCODE_S)
        super().set_image(image)

    def predict(self, *, on_canvas=False):
        time.sleep(self.DECODE_S)
        return Prediction(mask=np.zeros(self.image_shape, bool),
                          prob=np.zeros(self.image_shape, np.float32))


def test_encoder_and_decoder_are_timed_apart():
    dataset = ListDataset([_square(), _square(top=2)])
    result = run_click_test(SlowPredictor(), dataset, 'ritm',
                            progress=False)
    assert result.num_steps == 40
    enc, dec = result.encoder_seconds_per_image, \
        result.decoder_seconds_per_click
    # 20 decoder calls (0.1 s) per image must not leak into the encoder
    assert SlowPredictor.ENCODE_S <= enc < SlowPredictor.ENCODE_S + 0.08
    assert SlowPredictor.DECODE_S <= dec < SlowPredictor.ENCODE_S
    assert result.spc == pytest.approx(result.process_seconds / 40)
    assert result.process_seconds >= 2 * SlowPredictor.ENCODE_S + 40 * \
        SlowPredictor.DECODE_S


def test_shards_recombine_into_the_single_process_result():
    corners = [(2, 3), (10, 12), (5, 30), (20, 8), (1, 1)]
    gts = [_square(top=top, left=left) for top, left in corners]
    dataset = ListDataset(gts)
    whole = run_click_test(DiskPredictor(radius=4, size_divisor=32), dataset,
                           'official', seed=7, progress=False)
    parts = [
        run_click_test(DiskPredictor(radius=4, size_divisor=32), dataset,
                       'official', seed=7, progress=False,
                       indices=shard_indices(range(5), rank, 2))
        for rank in range(2)
    ]
    merged = sorted(parts[0].instances + parts[1].instances,
                    key=lambda inst: inst.index)
    assert [(i.index, i.clicks, i.ious) for i in merged] == [
        (i.index, i.clicks, i.ious) for i in whole.instances
    ]
    assert shard_indices(range(5), 1, 2) == [1, 3]
    with pytest.raises(ValueError, match='bad rank'):
        shard_indices(range(5), 2, 2)


def test_tta_needs_a_decoder_and_the_image_protocol():
    gt = _square()
    image = np.zeros((*gt.shape, 3), np.uint8)
    # flip / zoom-in re-decode views: a stand-in without decode_logits
    with pytest.raises(TypeError, match='decode_logits'):
        evaluate_instance(DiskPredictor(), image, gt,
                          get_protocol('ritm', flip=True))
    with pytest.raises(ValueError, match='padded canvas'):
        evaluate_instance(DiskPredictor(), image, gt,
                          get_protocol('official', flip=True))


# --------------------------------------------- the real predictor's split
class CountingSegmentor(torch.nn.Module):
    """Foreground where the reference label says (possibly/definitely) fg;
    counts the backbone and per-click decoder calls."""

    def __init__(self):
        super().__init__()
        self.encode_calls = 0
        self.decode_calls = 0

    def extract_image_feats(self, inputs):
        self.encode_calls += 1
        b, _, h, w = inputs.shape
        return [inputs.new_zeros(b, 32, h // 4, w // 4)]

    def decode_clicks(self, feats, ref_label, prev_mask=None, roi=None,
                      **kwargs):
        self.decode_calls += 1
        fg = (ref_label >= 3).float()
        return F.avg_pool2d(torch.cat([1 - 2 * fg, 2 * fg - 1], 1) * 4, 4)

    def upsample_logits(self, logits, size):
        return F.interpolate(logits, size=size, mode='nearest')


@pytest.mark.parametrize('protocol', ['ritm', 'official'])
def test_interformer_predictor_encodes_once_per_instance(protocol):
    model = CountingSegmentor()
    dataset = ListDataset([_square(), _square(top=20, left=30, size=8),
                           _square(h=33, w=47)])
    result = run_click_test(InterFormerPredictor(model), dataset, protocol,
                            progress=False)
    assert model.encode_calls == len(dataset)
    assert model.decode_calls >= len(dataset)
    assert model.decode_calls <= result.num_steps
    assert all(len(i.ious) == 20 for i in result.instances)


def test_finalize_distributed_leaves_the_group(tmp_path):
    """A one-process gloo group is left cleanly (and leaving twice or
    without a group is a no-op)."""
    import torch.distributed as dist

    from interformer.evaluation import finalize_distributed, get_dist_info
    finalize_distributed()  # no group: nothing to do
    dist.init_process_group(
        backend='gloo', init_method=f'file://{tmp_path / "store"}',
        rank=0, world_size=1)
    assert get_dist_info() == (0, 1) and dist.is_initialized()
    finalize_distributed()
    assert not dist.is_initialized()
    finalize_distributed()
