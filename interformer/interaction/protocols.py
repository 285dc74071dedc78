"""Click-test protocols: every switch that differs between the field standard
(RITM / SimpleClick / FocalClick) and the official InterFormer click test.

Two presets exist (``evaluation.md`` §2 and §13):

* ``'ritm'`` (the default): first maximum in raster order, earlier clicks
  zeroed in the distance map *after* the transform, ignore pixels excluded
  from the error masks, ``prob > 0.49``, early stop at IoU 0.90, and a
  degenerate negative click at pixel (0, 0) when nothing is wrong.
* ``'official'``: the official ``tools/clicktest.py`` and training click
  simulation: uniform random choice among the deepest error pixels (seeded
  :class:`numpy.random.Generator`), earlier clicks removed from the error
  masks *before* the transform, ignore pixels treated as background by the
  clicker (and only excluded from the IoU), argmax prediction, always 20
  clicks, IoU on the zero-padded model canvas, and no click at all when
  nothing is wrong.

Use :func:`get_protocol` to build one, with overrides, from a name, a dict
or an existing :class:`ClickProtocol`.
"""
import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

__all__ = [
    'ClickProtocol', 'get_protocol', 'PROTOCOL_PRESETS', 'TIE_BREAKS',
    'CLICKED_HANDLINGS', 'NO_ERROR_ACTIONS'
]

TIE_BREAKS = ('first', 'random')
CLICKED_HANDLINGS = ('zero_after_dt', 'hole_before_dt')
NO_ERROR_ACTIONS = ('first_pixel', 'none')


@dataclass(frozen=True)
class ClickProtocol:
    """One click-test protocol (immutable; derive variants with overrides).

    Attributes:
        name (str): preset name or a user label. Default: ``'ritm'``.
        max_clicks (int): click budget per instance. Default: 20.
        iou_thrs (tuple[float]): thresholds for NoC / NoF reporting.
            Default: ``(0.85, 0.9)``.
        pred_thr (float | None): probability threshold that turns the model
            output into a mask (``prob > pred_thr``); None means argmax over
            the two logits. Default: 0.49 (RITM's ``--thresh``).
        early_stop_iou (float | None): stop an instance once its IoU reaches
            this value (after ``min_clicks`` clicks); None runs every click.
            Default: 0.90.
        min_clicks (int): clicks always made before the early stop may
            trigger. Default: 1.
        tie_break (str): ``'first'`` picks the first deepest pixel in raster
            order (smallest row, then column); ``'random'`` draws uniformly
            among the candidates with a :class:`numpy.random.Generator`.
            Default: ``'first'``.
        clicked_handling (str): ``'zero_after_dt'`` zeroes already-clicked
            pixels in the distance map after the transform (RITM);
            ``'hole_before_dt'`` removes them from the error masks before
            the transform, so they pull nearby distances down (official).
            Default: ``'zero_after_dt'``.
        ignore_in_clicker (bool): True excludes ignore pixels (gt == -1)
            from both error masks (RITM); False lets the clicker treat them
            as background (official: the clicker only sees gt == 1).
            Default: True.
        iou_on_padded_canvas (bool): compute the IoU on the model's
            zero-padded canvas (official; predicted foreground in the pad is
            a false positive) instead of the original image. Default: False.
        candidate_k (float): candidate band: candidates are the pixels with
            distance > max / k; k = 1 means the deepest pixels only (the
            division uses 1 + float32 eps then). Training uses 1.7 after the
            first click. Must be >= 1. Default: 1.0.
        no_error_action (str): what happens when both error masks are
            empty: ``'first_pixel'`` returns RITM's degenerate negative
            click at (0, 0); ``'none'`` returns no click (official).
            Default: ``'first_pixel'``.
        flip (bool): horizontal-flip test-time augmentation (logit average,
            as RITM's predictor; :mod:`interformer.evaluation.tta`). Off in
            both presets (``tools/clicktest.py --tta flip``). Default: False.
        zoom_in (dict | None): RITM ZoomIn settings (the keyword arguments
            of :class:`interformer.evaluation.ritm_transforms.RitmZoomIn`;
            RITM-family published NoC numbers use it: ``--tta zoom_in``),
            or None for no zoom. Default: None.
    """
    name: str = 'ritm'
    max_clicks: int = 20
    iou_thrs: Tuple[float, ...] = (0.85, 0.9)
    pred_thr: Optional[float] = 0.49
    early_stop_iou: Optional[float] = 0.90
    min_clicks: int = 1
    tie_break: str = 'first'
    clicked_handling: str = 'zero_after_dt'
    ignore_in_clicker: bool = True
    iou_on_padded_canvas: bool = False
    candidate_k: float = 1.0
    no_error_action: str = 'first_pixel'
    flip: bool = False
    zoom_in: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        # Normalise the thresholds to a tuple so the dataclass stays
        # hashable and comparable whatever sequence the caller passed.
        object.__setattr__(self, 'iou_thrs',
                           tuple(float(t) for t in self.iou_thrs))
        self._validate()

    def _validate(self) -> None:
        where = f'ClickProtocol({self.name!r})'
        if not isinstance(self.max_clicks, int) or self.max_clicks < 1:
            raise ValueError(f'{where}: max_clicks must be an int >= 1, '
                             f'got {self.max_clicks!r}')
        if (not isinstance(self.min_clicks, int)
                or not 1 <= self.min_clicks <= self.max_clicks):
            raise ValueError(
                f'{where}: min_clicks must be an int in [1, max_clicks='
                f'{self.max_clicks}], got {self.min_clicks!r}')
        if not self.iou_thrs or any(not 0 < t <= 1 for t in self.iou_thrs):
            raise ValueError(f'{where}: iou_thrs must be a non-empty '
                             f'sequence in (0, 1], got {self.iou_thrs!r}')
        if self.pred_thr is not None and not 0 < self.pred_thr < 1:
            raise ValueError(f'{where}: pred_thr must be in (0, 1) or None, '
                             f'got {self.pred_thr!r}')
        if self.early_stop_iou is not None and self.early_stop_iou <= 0:
            raise ValueError(f'{where}: early_stop_iou must be > 0 or None, '
                             f'got {self.early_stop_iou!r}')
        for field, value, valid in (
            ('tie_break', self.tie_break, TIE_BREAKS),
            ('clicked_handling', self.clicked_handling, CLICKED_HANDLINGS),
            ('no_error_action', self.no_error_action, NO_ERROR_ACTIONS),
        ):
            if value not in valid:
                raise ValueError(f'{where}: {field} must be one of {valid}, '
                                 f'got {value!r}')
        if not self.candidate_k >= 1.0:
            raise ValueError(f'{where}: candidate_k must be >= 1, '
                             f'got {self.candidate_k!r}')
        if self.candidate_k > 1.0 and self.tie_break != 'random':
            raise ValueError(
                f"{where}: candidate_k > 1 needs tie_break='random' "
                f'(a band of candidates with a raster-order pick is not a '
                f'protocol anyone uses)')
        if self.zoom_in is not None and not isinstance(self.zoom_in, dict):
            raise ValueError(f'{where}: zoom_in must be a dict or None, '
                             f'got {type(self.zoom_in).__name__}')


PROTOCOL_PRESETS: Dict[str, ClickProtocol] = {
    'ritm':
    ClickProtocol(),
    'official':
    ClickProtocol(name='official',
                  pred_thr=None,
                  early_stop_iou=None,
                  tie_break='random',
                  clicked_handling='hole_before_dt',
                  ignore_in_clicker=False,
                  iou_on_padded_canvas=True,
                  no_error_action='none'),
}

ProtocolLike = Union[str, ClickProtocol, Dict[str, Any]]


def get_protocol(name_or_protocol: ProtocolLike = 'ritm',
                 **overrides: Any) -> ClickProtocol:
    """Build a :class:`ClickProtocol` from a preset name, a dict or a protocol.

    Args:
        name_or_protocol (str | dict | ClickProtocol): a preset name
            (``'ritm'`` or ``'official'``), a config dict whose ``'name'``
            is a preset name and whose other keys are overrides, or an
            existing protocol. Default: ``'ritm'``.
        **overrides: field values replacing those of the preset.

    Returns:
        ClickProtocol: a new (validated) protocol.

    Raises:
        ValueError: unknown preset name or unknown field.
        TypeError: an argument of another type.
    """
    if isinstance(name_or_protocol, ClickProtocol):
        base = name_or_protocol
    elif isinstance(name_or_protocol, dict):
        cfg = dict(name_or_protocol)
        name = cfg.pop('name', 'ritm')
        return get_protocol(name, **{**cfg, **overrides})
    elif isinstance(name_or_protocol, str):
        if name_or_protocol not in PROTOCOL_PRESETS:
            raise ValueError(
                f'get_protocol: unknown protocol {name_or_protocol!r}; '
                f'valid names are {sorted(PROTOCOL_PRESETS)}')
        base = PROTOCOL_PRESETS[name_or_protocol]
    else:
        raise TypeError(
            'get_protocol: expected a protocol name, dict or ClickProtocol, '
            f'got {type(name_or_protocol).__name__}')
    if not overrides:
        return base
    fields = {f.name for f in dataclasses.fields(ClickProtocol)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f'get_protocol: unknown field(s) {unknown}; valid '
                         f'fields are {sorted(fields)}')
    return dataclasses.replace(base, **overrides)
