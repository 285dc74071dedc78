"""Click-protocol presets and overrides."""
import pytest

from interformer.interaction import (
    PROTOCOL_PRESETS,
    ClickProtocol,
    get_protocol,
)


def test_presets_match_evaluation_spec():
    ritm, official = get_protocol(), get_protocol('official')
    assert ritm is PROTOCOL_PRESETS['ritm'] and ritm.name == 'ritm'
    assert (ritm.max_clicks, ritm.iou_thrs, ritm.pred_thr, ritm.early_stop_iou,
            ritm.min_clicks) == (20, (0.85, 0.9), 0.49, 0.90, 1)
    assert (ritm.tie_break, ritm.clicked_handling, ritm.ignore_in_clicker,
            ritm.iou_on_padded_canvas,
            ritm.no_error_action) == ('first', 'zero_after_dt', True, False,
                                      'first_pixel')
    assert (official.max_clicks, official.pred_thr,
            official.early_stop_iou) == (20, None, None)
    assert (official.tie_break, official.clicked_handling,
            official.ignore_in_clicker, official.iou_on_padded_canvas,
            official.no_error_action) == ('random', 'hole_before_dt', False,
                                          True, 'none')
    assert ritm.candidate_k == official.candidate_k == 1.0
    assert not ritm.flip and ritm.zoom_in is None


def test_overrides_from_name_dict_and_object():
    proto = get_protocol('official', candidate_k=1.7, iou_thrs=[0.8])
    assert proto.candidate_k == 1.7 and proto.iou_thrs == (0.8, )
    assert PROTOCOL_PRESETS['official'].candidate_k == 1.0  # untouched
    again = get_protocol(proto, max_clicks=5)
    assert again.max_clicks == 5 and again.candidate_k == 1.7
    from_dict = get_protocol(dict(name='official', max_clicks=10))
    assert from_dict.tie_break == 'random' and from_dict.max_clicks == 10
    assert get_protocol(dict(max_clicks=3)).name == 'ritm'


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"\['official', 'ritm'\]"):
        get_protocol('focsam')
    with pytest.raises(ValueError, match='unknown field'):
        get_protocol('ritm', max_click=3)
    with pytest.raises(TypeError, match='ClickProtocol'):
        get_protocol(3)
    with pytest.raises(ValueError, match='tie_break'):
        ClickProtocol(tie_break='last')
    with pytest.raises(ValueError, match="needs tie_break='random'"):
        get_protocol('ritm', candidate_k=1.7)
    with pytest.raises(ValueError, match='candidate_k'):
        get_protocol('official', candidate_k=0.9)
    with pytest.raises(ValueError, match='min_clicks'):
        get_protocol('ritm', min_clicks=21)
    with pytest.raises(ValueError, match='iou_thrs'):
        get_protocol('ritm', iou_thrs=(85, ))
    with pytest.raises(ValueError, match='pred_thr'):
        get_protocol('ritm', pred_thr=1.5)
    with pytest.raises(ValueError, match='clicked_handling'):
        get_protocol('ritm', clicked_handling='ignore')
