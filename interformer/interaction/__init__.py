"""Click state shared by training and evaluation: the robot user and the
reference label."""
from .click_simulation import (
                     DEFAULT_SIMULATION_CFG,
                     simulate_reference_labels,
)
from .clicks import (
                     FLOAT32_EPS,
                     IGNORE_LABEL,
                     Click,
                     ClickCandidates,
                     find_click_candidates,
                     next_click,
)
from .distance import (
                     bbox_distance_transform,
                     mask_bbox,
                     padded_distance_transform,
)
from .protocols import PROTOCOL_PRESETS, ClickProtocol, get_protocol
from .reference_label import (
                     CLICK_RADIUS,
                     NUM_REF_STATES,
                     REF_DEFINITE_BG,
                     REF_DEFINITE_FG,
                     REF_POSSIBLE_BG,
                     REF_POSSIBLE_FG,
                     REF_UNKNOWN,
                     add_click_disk,
                     new_reference_label,
                     update_by_prediction,
)

__all__ = [
    'DEFAULT_SIMULATION_CFG', 'simulate_reference_labels',
    'CLICK_RADIUS', 'NUM_REF_STATES', 'REF_DEFINITE_BG', 'REF_DEFINITE_FG',
    'REF_POSSIBLE_BG', 'REF_POSSIBLE_FG', 'REF_UNKNOWN', 'add_click_disk',
    'new_reference_label', 'update_by_prediction', 'Click', 'ClickCandidates',
    'ClickProtocol', 'FLOAT32_EPS', 'IGNORE_LABEL', 'PROTOCOL_PRESETS',
    'bbox_distance_transform', 'find_click_candidates', 'get_protocol',
    'mask_bbox', 'next_click', 'padded_distance_transform'
]
