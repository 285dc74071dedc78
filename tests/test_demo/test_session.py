"""DemoSession: encode once, decode per click, objects and label maps."""
import numpy as np
import pytest

from interformer.demo import DemoSession
from interformer.demo.render import CURRENT_ALPHA, FINISHED_ALPHA, object_color

RED = (32, 32)  # (y, x) inside the red square
BLUE = (60, 92)  # inside the blue square
BACKGROUND = (88, 8)


@pytest.fixture
def session(color_predictor, image):
    session = DemoSession(color_predictor)
    session.set_image(image, 'shapes')
    return session


def test_encoder_runs_once_per_image(session, image):
    model = session.predictor.model
    assert model.encode_calls == 1
    session.click(*RED, True)
    session.click(*BACKGROUND, False)
    session.undo()
    session.reset()
    session.click(*BLUE, True)
    assert model.encode_calls == 1
    assert model.decode_calls == 3  # one per new click, none for undo
    session.set_image(image, 'again')
    assert model.encode_calls == 2


def test_click_segments_and_reports_latency(session):
    assert not session.current_mask().any()
    latency = session.click(*RED, True)
    assert latency > 0 and session.last_latency_ms == latency
    mask = session.current_mask()
    assert mask.shape == (96, 128) and mask.dtype == bool
    assert mask[16:48, 16:48].all()
    assert mask.sum() == 32 * 32
    assert session.clicks == [(32, 32, True)]


def test_negative_click_and_undo(session):
    session.click(*RED, True)
    first = session.current_mask()
    session.click(20, 20, False)
    assert not session.current_mask()[20, 20]
    assert session.current_mask().sum() < first.sum()
    assert session.undo() is True
    np.testing.assert_array_equal(session.current_mask(), first)
    assert session.undo() is True
    assert not session.current_mask().any()
    assert session.undo() is False


def test_click_outside_image_is_rejected(session):
    with pytest.raises(ValueError, match='outside the 96x128 image'):
        session.click(96, 0, True)
    with pytest.raises(ValueError, match='outside'):
        session.click(0, -1, True)
    assert session.clicks == []


def test_no_image_gives_clear_error(color_predictor):
    session = DemoSession(color_predictor)
    assert not session.has_image
    for call in (lambda: session.click(0, 0, True), session.undo,
                 session.reset, session.label_map, session.current_mask):
        with pytest.raises(RuntimeError, match='no image loaded'):
            call()


def test_next_object_and_label_map(session):
    assert session.next_object() is False  # nothing to finish yet
    session.click(*RED, True)
    assert session.next_object() is True
    assert session.object_index == 2 and session.num_finished == 1
    assert session.clicks == [] and not session.current_mask().any()
    session.click(*BLUE, True)
    labels = session.label_map()
    assert labels.dtype == np.uint8 and labels.shape == (96, 128)
    assert (labels[16:48, 16:48] == 1).all()
    assert (labels[40:80, 72:112] == 2).all()
    assert set(np.unique(labels)) == {0, 1, 2}
    # the current object is not in the map once its clicks are cleared
    session.reset()
    assert set(np.unique(session.label_map())) == {0, 1}
    assert session.num_finished == 1


def test_later_objects_paint_over_earlier(session):
    session.click(*RED, True)
    session.next_object()
    session.click(*RED, True)  # the same square again, as object 2
    assert (session.label_map()[16:48, 16:48] == 2).all()


def test_new_image_forgets_objects(session, image):
    session.click(*RED, True)
    session.next_object()
    session.set_image(image[:50, :60].copy(), 'crop')
    assert session.shape == (50, 60) and session.name == 'crop'
    assert session.num_finished == 0 and session.clicks == []
    assert not session.label_map().any()


def test_overlay_colors(session):
    session.click(*RED, True)
    session.next_object()
    session.click(*BLUE, True)
    overlay = session.overlay()
    assert overlay.shape == (96, 128, 4) and overlay.dtype == np.uint8
    assert overlay[BACKGROUND][3] == 0
    assert tuple(overlay[RED]) == (*object_color(1), FINISHED_ALPHA)
    assert tuple(overlay[BLUE]) == (*object_color(2), CURRENT_ALPHA)
    assert overlay[40, 90][3] == 255  # outline of the current object


def test_many_objects_switch_to_uint16(color_predictor):
    session = DemoSession(color_predictor)
    session.set_image(np.full((8, 8, 3), 100, np.uint8))
    for index in range(256):
        session.click(index % 8, 0, True)  # a uniform image: all object
        assert session.next_object()
    labels = session.label_map()
    assert labels.dtype == np.uint16 and (labels == 256).all()
