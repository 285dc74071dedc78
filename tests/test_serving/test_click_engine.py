"""ClickEngine: same masks as InterFormerPredictor, one encode per image,
N objects in one decoder call, start masks, boxes, the LRU bound."""
import numpy as np
import pytest

from interformer.apis import InterFormerPredictor
from interformer.serving.engine import ClickEngine, ObjectPrompt, PromptError

CLICKS = [(70, 120, True), (10, 10, False), (100, 50, True)]


def _predictor_masks(model, image, clicks):
    predictor = InterFormerPredictor(model, path='reference')
    predictor.set_image(image)
    masks = []
    for click in clicks:
        predictor.add_click(*click)
        masks.append(predictor.predict().mask)
    return predictor, masks


def test_same_masks_as_the_predictor_and_one_decode_per_new_click(
        engine, tiny_model, sample_image):
    image = sample_image()
    _, expected = _predictor_masks(tiny_model, image, CLICKS)
    encoded, hit = engine.encode_array(image)
    assert not hit
    for k in range(1, len(CLICKS) + 1):
        # stateless: every request resends all clicks
        [mask] = engine.segment(encoded, [ObjectPrompt(CLICKS[:k])])
        np.testing.assert_array_equal(mask, expected[k - 1])
    assert engine.encodes == 1 and engine.decode_calls == len(CLICKS)
    assert engine.encode_array(image)[1] is True


def test_objects_are_batched_in_one_call(engine, tiny_model, sample_image):
    image = sample_image()
    encoded, _ = engine.encode_array(image)
    objects = [ObjectPrompt(CLICKS[:1]), ObjectPrompt([(20, 30, True)]),
               ObjectPrompt([(120, 180, True)])]
    masks = engine.segment(encoded, objects)
    assert engine.decode_calls == 1
    for obj, mask in zip(objects, masks):
        _, [expected] = _predictor_masks(tiny_model, image, obj.clicks)
        np.testing.assert_array_equal(mask, expected)


def test_start_mask_is_the_previous_prediction(engine, tiny_model,
                                               sample_image):
    """A start mask M and a click c decode the reference label
    update(unknown, M) + disk(c), as the predictor's next step would."""
    from interformer.interaction import (
        add_click_disk,
        new_reference_label,
        update_by_prediction,
    )
    image = sample_image()
    predictor, masks = _predictor_masks(tiny_model, image, CLICKS[:1])
    start = masks[0]
    canvas = predictor.canvas_shape
    padded = np.zeros(canvas, bool)
    padded[:150, :200] = start
    ref = update_by_prediction(new_reference_label(*canvas), padded)
    add_click_disk(ref, *CLICKS[1])
    logits = tiny_model.upsample_logits(predictor.decode_logits(ref),
                                        canvas)
    expected = (logits[0, 1] > logits[0, 0]).numpy()[:150, :200]
    encoded, _ = engine.encode_array(image)
    [mask] = engine.segment(encoded, [ObjectPrompt([CLICKS[1]],
                                                   mask=start)])
    np.testing.assert_array_equal(mask, expected)
    # a mask alone is refined once (no click)
    [refined] = engine.segment(encoded, [ObjectPrompt(mask=start)])
    assert refined.shape == start.shape and refined.any()


def test_mixed_objects_in_one_batch_equal_their_single_answers(
        engine, tiny_model, sample_image):
    """Objects at different steps in one request (a start mask, none, a
    mask alone, a box alone) share each round's click step: every answer
    equals the object decoded alone."""
    image = sample_image()
    _, masks = _predictor_masks(tiny_model, image, CLICKS[:1])
    objects = [ObjectPrompt(CLICKS[1:], mask=masks[0]),
               ObjectPrompt(CLICKS),
               ObjectPrompt(mask=masks[0]),
               ObjectPrompt(box=(40, 90, 100, 150))]
    encoded, _ = engine.encode_array(image)
    together = engine.segment(encoded, objects)
    assert engine.decode_calls == len(CLICKS)  # rounds, not objects
    for obj, mask in zip(objects, together):
        alone = ClickEngine(tiny_model, cache_mb=64)
        [expected] = alone.segment(alone.encode_array(image)[0], [obj])
        np.testing.assert_array_equal(mask, expected)


def test_box_clips_the_mask_and_alone_clicks_its_centre(engine,
                                                      sample_image):
    encoded, _ = engine.encode_array(sample_image())
    box = (40, 90, 100, 150)
    [mask] = engine.segment(encoded, [ObjectPrompt(box=box)])
    assert not mask[:40].any() and not mask[100:].any()
    assert not mask[:, :90].any() and not mask[:, 150:].any()
    [boxed] = engine.segment(encoded, [ObjectPrompt([(70, 120, True)],
                                                    box=box)])
    [free] = engine.segment(encoded, [ObjectPrompt([(70, 120, True)])])
    assert boxed.sum() <= free.sum()


@pytest.mark.parametrize('obj, message', [
    (ObjectPrompt([(150, 0, True)]), 'outside the 150x200 image'),
    (ObjectPrompt([(1.5, 0, True)]), 'int y'),
    (ObjectPrompt([(1, 0, 'yes')]), 'bool positive'),
    (ObjectPrompt(), 'at least one click'),
    (ObjectPrompt(box=(200, 0, 300, 10)), 'empty or outside'),
    (ObjectPrompt([(1, 1, True)], mask=np.zeros((5, 5), bool)),
     'mask shape'),
])
def test_bad_prompts(engine, obj, message, sample_image):
    encoded, _ = engine.encode_array(sample_image())
    with pytest.raises(PromptError, match=message):
        engine.segment(encoded, [obj])


def test_cache_is_keyed_by_content_and_bounded(tiny_model, sample_image,
                                               png_bytes):
    engine = ClickEngine(tiny_model, cache_mb=64)
    first, hit = engine.encode_bytes(png_bytes(sample_image(seed=1)))
    size = engine.cache.bytes
    assert not hit and size > 0
    assert engine.encode_bytes(png_bytes(sample_image(seed=1)))[1]
    # a bound of 2.5 entries keeps the last two images
    small = ClickEngine(tiny_model, cache_mb=2.5 * size / 2**20)
    keys = [small.encode_bytes(png_bytes(sample_image(seed=s)))[0].key
            for s in range(4)]
    assert len(small.cache) == 2 and small.cache.evictions == 2
    assert keys[0] not in small.cache and keys[3] in small.cache
    assert small.cache.bytes <= small.cache.max_bytes


def test_deployed_model_gives_the_fast_predictors_masks(repo_root,
                                                        sample_image):
    """tools/serve.py deploys the model (fused per-click layers) before
    serving: the engine on it answers like the fast predictor."""
    import os.path as osp

    import torch
    from mmengine.registry import DefaultScope

    from interformer.apis import init_model
    torch.manual_seed(1)
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = init_model(osp.join(repo_root, 'configs', '_base_',
                                    'models', 'interformer_debug.py'))
    image = sample_image()
    predictor = InterFormerPredictor(model)  # deploys in place
    predictor.set_image(image)
    engine = ClickEngine(model)
    encoded, _ = engine.encode_array(image)
    for k, click in enumerate(CLICKS, start=1):
        predictor.add_click(*click)
        expected = predictor.predict().mask
        [mask] = engine.segment(encoded, [ObjectPrompt(CLICKS[:k])])
        union = (mask | expected).sum()
        iou = (mask & expected).sum() / max(union, 1)
        assert iou >= 0.99, (k, iou, int((mask != expected).sum()))
