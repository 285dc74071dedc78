"""RITM's flip / ZoomIn test-time augmentation in the click test."""
import importlib.util
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from interformer.apis import InterFormerPredictor
from interformer.evaluation import (
    TTAPredictor,
    get_protocol,
    parse_tta,
    run_click_test,
    tta_overrides,
)
from interformer.evaluation.ritm_transforms import (
    get_object_roi,
    roi_target_shape,
)
from interformer.interaction import (
    REF_DEFINITE_FG,
    Box,
    Click,
    add_click_disk,
    new_reference_label,
    pad_to_canvas,
)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEBUG_CONFIG = osp.join(REPO, 'configs', '_base_', 'models',
                        'interformer_debug.py')


class ImageSegmentor(torch.nn.Module):
    """Foreground margin = clicks (ref >= 3) plus a small image term, so the
    answer is not mirror-symmetric; records the encoded shapes and labels."""

    def __init__(self, image_weight=0.5):
        super().__init__()
        self.image_weight = image_weight
        self.encoded, self.fed = [], []

    def extract_image_feats(self, inputs):
        self.encoded.append(tuple(inputs.shape[-2:]))
        return [F.avg_pool2d(inputs[:, :1], 4)]

    def decode_clicks(self, feats, ref_label, prev_mask=None, roi=None):
        self.fed.append(ref_label[0, 0].numpy().copy())
        fg = F.avg_pool2d((ref_label >= 3).float() * 2 - 1, 4)
        margin = 4 * fg + self.image_weight * feats[0]
        return torch.cat([torch.zeros_like(margin), margin], 1)

    def upsample_logits(self, logits, size):
        return F.interpolate(logits, size=size, mode='bilinear',
                             align_corners=False)


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


def _margin(predictor, ref):
    canvas = predictor.canvas_shape
    logits = predictor.decode_logits(pad_to_canvas(ref, canvas, 2))
    up = predictor.model.upsample_logits(logits, canvas)
    return (up[0, 1] - up[0, 0])[:ref.shape[0], :ref.shape[1]]


def test_flip_averages_a_mirrored_pass():
    image = _image(40, 56)
    tta = TTAPredictor(InterFormerPredictor(ImageSegmentor()), flip=True)
    tta.set_image(image)
    tta.add_click(20, 10, True)
    answer = tta.predict()
    # by hand: the label and the mirrored label on two plain predictors
    ref = new_reference_label(40, 56)
    add_click_disk(ref, 20, 10, True)
    plain = InterFormerPredictor(ImageSegmentor())
    plain.set_image(image)
    mirror = InterFormerPredictor(ImageSegmentor())
    mirror.set_image(np.ascontiguousarray(image[:, ::-1]))
    m_plain = _margin(plain, ref)
    m_mirror = _margin(mirror, np.ascontiguousarray(ref[:, ::-1]))
    expected = torch.sigmoid(0.5 * (m_plain + m_mirror.flip(-1)))
    np.testing.assert_allclose(answer.prob, expected.numpy(), atol=1e-6)
    # the image term is asymmetric: the average differs from either pass
    assert not np.allclose(answer.prob, torch.sigmoid(m_plain).numpy(),
                           atol=1e-3)
    assert answer.mask.dtype == bool and answer.mask[20, 10]
    assert tta.views[1].image_shape == (40, 56)


def test_zoom_in_crops_around_the_object_like_ritm():
    model = ImageSegmentor(image_weight=0.0)
    zoom = dict(target_size=48, skip_clicks=1, expansion_ratio=1.4,
                min_crop_size=24, recompute_thresh_iou=0.5, prob_thresh=0.5)
    tta = TTAPredictor(InterFormerPredictor(model), zoom_in=zoom)
    tta.set_image(_image(96, 128))
    tta.add_click(40, 60, True)
    first = tta.predict()
    assert tta.view_box is None and model.encoded == [(96, 128)]
    tta.add_click(44, 70, True)
    second = tta.predict()
    clicks = [Click(40, 60, True), Click(44, 70, True)]
    roi = get_object_roi(first.prob > 0.5, clicks, 1.4, 24)
    assert tta.view_box == roi and roi.height < 96 and roi.width < 128
    shape = roi_target_shape(roi, 48)
    assert max(shape) == 48 and tta.image_shape == (96, 128)
    assert tta.base.image_shape == shape  # the crop was encoded
    assert len(model.encoded) == 2
    # the label fed in the crop: both disks at 5 view pixels, not scaled
    fed = model.fed[-1][:shape[0], :shape[1]]
    assert (fed == REF_DEFINITE_FG).sum() <= 2 * 81
    assert (fed == REF_DEFINITE_FG).sum() > 81
    # nothing is predicted outside the crop; the answer is finite
    outside = np.ones((96, 128), bool)
    outside[roi.slices] = False
    assert (second.prob[outside] == 0).all() and not second.mask[outside].any()
    assert np.isfinite(second.prob).all() and second.mask[44, 70]
    # a kept ROI is not encoded again
    tta.add_click(42, 65, True)
    tta.predict()
    assert tta.view_box == roi and len(model.encoded) == 2
    # a new object starts from the whole image again
    tta.reset()
    tta.add_click(10, 10, True)
    tta.predict()
    assert tta.view_box is None and model.encoded[-1] == (96, 128)


@pytest.mark.parametrize('flip', [False, True])
def test_undo_gives_the_answer_before_the_undone_click(flip):
    """The shared click session: undo drops the click and its step; with
    zoom-in the remaining clicks are replayed (the ROI follows them)."""
    zoom = dict(target_size=48, skip_clicks=1, expansion_ratio=1.4,
                min_crop_size=24, recompute_thresh_iou=0.5, prob_thresh=0.5)
    tta = TTAPredictor(InterFormerPredictor(ImageSegmentor()), flip=flip,
                       zoom_in=zoom)
    tta.set_image(_image(96, 128, seed=4))
    answers = []
    for y, x, positive in [(40, 60, True), (44, 70, True), (30, 50, False)]:
        tta.add_click(y, x, positive)
        answers.append(tta.predict())
    for kept in (1, 0):
        assert tta.undo()
        again = tta.predict()
        np.testing.assert_array_equal(again.mask, answers[kept].mask)
        np.testing.assert_allclose(again.prob, answers[kept].prob, atol=1e-6)
    assert tta.undo() and not tta.undo() and not tta.predict().mask.any()
    with pytest.raises(TypeError, match='bool'):
        tta.add_click(1, 1, 'yes')


def test_tta_flag_parsing():
    assert parse_tta('zoom_in, flip') == ['flip', 'zoom_in']
    assert parse_tta(None) == [] and tta_overrides('', 'ritm') == {}
    over = tta_overrides('flip,zoom_in', 'ritm', 'davis')
    assert over['flip'] and over['zoom_in']['target_size'] == 600
    assert over['name'] == 'ritm+flip+zoom'
    assert tta_overrides('zoom_in', 'ritm', 'grabcut')['zoom_in'][
        'target_size'] == 400
    with pytest.raises(ValueError, match='unknown transform'):
        parse_tta('flip,mirror')
    with pytest.raises(ValueError, match='ritm protocol only'):
        tta_overrides('flip', 'official')
    with pytest.raises(ValueError, match='zoom_in settings'):
        TTAPredictor(InterFormerPredictor(ImageSegmentor()),
                     zoom_in=dict(target=3))


class _Objects:
    def __init__(self, size=(64, 80)):
        gt = np.zeros(size, np.int8)
        gt[16:44, 20:60] = 1
        gt[30:34, 40:44] = 0
        self.sample = dict(image=_image(*size, seed=1), gt=gt, name='obj')

    def __len__(self):
        return 1

    def get_sample(self, index):
        return self.sample


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'clicktest_tool', osp.join(REPO, 'tools', 'clicktest.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tta_flag_reaches_the_loop_on_the_debug_model(tmp_path,
                                                      monkeypatch):
    """tools/clicktest.py --tta flip,zoom_in on the real tiny InterFormer:
    the protocol reaches run_click_test, the predictor is wrapped, the
    results are finite."""
    tool = _load_tool()
    seen = {}

    def spy(predictor, dataset, protocol, **kwargs):
        seen['protocol'] = protocol
        small = dict(protocol.zoom_in, target_size=96, min_crop_size=32)
        result = run_click_test(
            predictor, dataset, get_protocol(protocol, zoom_in=small),
            **kwargs)
        seen['result'] = result
        return result

    monkeypatch.setattr(tool, 'run_click_test', spy)
    monkeypatch.setattr(tool, 'build_click_test_dataset',
                        lambda *args, **kwargs: _Objects())
    tool.main([
        DEBUG_CONFIG, '--dataset', 'grabcut', '--data-root', str(tmp_path),
        '--max-clicks', '4', '--tta', 'flip,zoom_in', '--work-dir',
        str(tmp_path / 'out'), '--no-progress'
    ])
    protocol = seen['protocol']
    assert protocol.flip and protocol.zoom_in['expansion_ratio'] == 1.4
    assert protocol.zoom_in['target_size'] == 400 and protocol.pred_thr == 0.49
    result = seen['result']
    ious = np.array(result.all_ious)
    assert ious.shape == (1, 4) and np.isfinite(ious).all()
    assert ((ious >= 0) & (ious <= 1)).all()
    report = tmp_path / 'out' / 'clicktest_grabcut_ritm+flip+zoom.json'
    assert osp.isfile(report)


def test_zoom_crop_of_the_debug_model_is_encoded():
    """The real model on a crop view: finite logits on the crop's canvas.
    A foreground bias makes the random model predict everything, so the ROI
    is the whole (clipped) image, resized to the target size."""
    base = InterFormerPredictor(DEBUG_CONFIG)
    with torch.no_grad():
        base.model.decode_head.conv_seg.bias.copy_(torch.tensor([0., 6.]))
    tta = TTAPredictor(base, flip=True, zoom_in=dict(
        target_size=64, min_crop_size=24))
    tta.set_image(_image(64, 96, seed=2))
    for y, x, positive in ((30, 40, True), (34, 50, True), (5, 5, False)):
        tta.add_click(y, x, positive)
        answer = tta.predict()
        assert np.isfinite(answer.prob).all()
        assert answer.prob.shape == (64, 96)
    assert tta.view_box == Box.from_shape(64, 96)
    assert base.image_shape == (43, 64) == tta.views[1].image_shape
