"""Click state shared by training, evaluation and the predictor: the robot
user, the reference label, the click step and the pixel geometry."""
# The reference label, the protocols, the geometry, the robot user and the
# click step run on numpy alone, so a client without torch
# (interformer.deploy.onnx_predictor) can import them; the training
# simulation needs torch.
try:
    import torch  # noqa: F401
except ImportError:  # a torch-free install
    HAS_TORCH = False
else:
    HAS_TORCH = True

from .click_step import (
    StepResult,
    advance_reference_label,
    click_step,
    fg_margin,
    foreground,
    foreground_from_logits,
    foreground_probability,
    prediction_foreground,
)
from .clicks import (
    FLOAT32_EPS,
    IGNORE_LABEL,
    Click,
    ClickCandidates,
    find_click_candidates,
    next_click,
)
from .distance import bbox_distance_transform, padded_distance_transform
from .geometry import (
    GRID_STRIDE,
    SIZE_DIVISOR,
    Box,
    canvas_shape,
    crop_to_image,
    grid_shape,
    pad_to_canvas,
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
    ClickBatch,
    add_click_disk,
    add_click_disks,
    checked_click,
    new_reference_label,
    update_by_prediction,
)

if HAS_TORCH:
    from .click_simulation import (
        DEFAULT_SIMULATION_CFG,
        simulate_reference_labels,
    )

__all__ = [
    'HAS_TORCH', 'CLICK_RADIUS', 'NUM_REF_STATES', 'REF_DEFINITE_BG',
    'REF_DEFINITE_FG',
    'REF_POSSIBLE_BG', 'REF_POSSIBLE_FG', 'REF_UNKNOWN', 'add_click_disk',
    'add_click_disks', 'ClickBatch', 'checked_click',
    'new_reference_label', 'update_by_prediction', 'ClickProtocol',
    'PROTOCOL_PRESETS', 'get_protocol', 'GRID_STRIDE', 'SIZE_DIVISOR', 'Box',
    'canvas_shape', 'crop_to_image', 'grid_shape', 'pad_to_canvas', 'Click',
    'ClickCandidates', 'FLOAT32_EPS', 'IGNORE_LABEL',
    'bbox_distance_transform', 'find_click_candidates', 'next_click',
    'padded_distance_transform', 'StepResult', 'advance_reference_label',
    'click_step', 'fg_margin', 'foreground', 'foreground_probability',
    'prediction_foreground', 'foreground_from_logits'
]
if HAS_TORCH:
    __all__ += ['DEFAULT_SIMULATION_CFG', 'simulate_reference_labels']
