"""Click state shared by training and evaluation: the robot user and the
reference label."""
from .reference_label import (CLICK_RADIUS, NUM_REF_STATES, REF_DEFINITE_BG,
                              REF_DEFINITE_FG, REF_POSSIBLE_BG,
                              REF_POSSIBLE_FG, REF_UNKNOWN, add_click_disk,
                              new_reference_label, update_by_prediction)

__all__ = [
    'CLICK_RADIUS', 'NUM_REF_STATES', 'REF_DEFINITE_BG', 'REF_DEFINITE_FG',
    'REF_POSSIBLE_BG', 'REF_POSSIBLE_FG', 'REF_UNKNOWN', 'add_click_disk',
    'new_reference_label', 'update_by_prediction'
]
