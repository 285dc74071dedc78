"""RITM's test-time augmentation for the click test: flip and ZoomIn.

RITM-family published NoC numbers (RITM, FocalClick, SimpleClick) are
measured with its predictor's transforms: ZoomIn (``cvpr`` mode) and, for
some, a horizontal flip. :class:`TTAPredictor` wraps a predictor
(:class:`interformer.apis.InterFormerPredictor`) with the same interface as
the click test expects and runs them, one
:func:`~interformer.interaction.click_step.click_step` per click whose
decoder is the augmented ensemble:

* **view**: the whole image, or from click ``skip_clicks + 1`` on the ROI
  crop chosen by :class:`~interformer.evaluation.ritm_transforms.RitmZoomIn`
  (RITM's rule), resized (bilinear, ``align_corners=True``, rounded back to
  uint8) so that its longer side is ``target_size``. A new crop is encoded
  by the backbone (as RITM runs its whole network on the crop); that time
  counts as decoder time.
* **label in the view**: the image-space reference label is cropped and
  resized with nearest neighbours; its click disks (the definite codes)
  become ``unknown`` and every click inside the crop gets a fresh disk of
  ``CLICK_RADIUS`` view pixels at RITM's mapped position (rounded), since
  RITM too encodes clicks in network-input pixels.
* **flip**: the view and its mirror image are both encoded; the mirrored
  label is decoded on the mirror, its logits are flipped back and averaged
  with the plain ones before the sigmoid (RITM's ``AddHorizontalFlip``).
* **back to the image**: without a crop the view margin is the answer.
  With a crop the view probability is resized to the ROI (bilinear,
  ``align_corners=True``) and pasted into zeros, as RITM does; the margin
  returned is its logit (``-inf`` outside the ROI).

The reference label is updated by the model's argmax decision (as without
TTA); the click test applies the protocol's rule (``prob > 0.49``) to the
answer. Only protocols that score on the image (not the padded canvas) can
use it: the ``ritm`` protocol.
"""
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..interaction import (
    CLICK_RADIUS,
    REF_DEFINITE_BG,
    REF_DEFINITE_FG,
    REF_UNKNOWN,
    Box,
    Click,
    ClickProtocol,
    add_click_disk,
    crop_to_image,
    fg_margin,
    foreground_probability,
    pad_to_canvas,
)
from ..interaction.click_session import ClickSession, Prediction
from .ritm_transforms import (
    RitmZoomIn,
    map_click_to_roi,
    ritm_zoom_in_params,
    roi_target_shape,
)

__all__ = [
    'TTAPredictor', 'TTA_CHOICES', 'parse_tta', 'tta_overrides',
    'with_tta', 'crop_reference_label', 'resize_image'
]

TTA_CHOICES = ('flip', 'zoom_in')


def parse_tta(spec: Optional[str]) -> List[str]:
    """``'flip,zoom_in'`` -> ``['flip', 'zoom_in']`` (validated)."""
    if not spec:
        return []
    names = [name.strip() for name in spec.split(',') if name.strip()]
    unknown = sorted(set(names) - set(TTA_CHOICES))
    if unknown:
        raise ValueError(f'--tta: unknown transform(s) {unknown}; choose a '
                         f'comma-separated subset of {list(TTA_CHOICES)}')
    return [name for name in TTA_CHOICES if name in names]


def tta_overrides(spec: Optional[str], protocol: str,
                  dataset: str = '') -> dict:
    """Protocol overrides for ``--tta``: ``flip``, ``zoom_in`` (RITM's
    ``cvpr`` settings for ``dataset``) and a name such as ``ritm+flip+zoom``
    so the reports do not overwrite the plain run's."""
    names = parse_tta(spec)
    if not names:
        return {}
    if protocol != 'ritm':
        raise ValueError(f'--tta applies to the ritm protocol only (RITM\'s '
                         f'predictor transforms), not to {protocol!r}')
    overrides = dict(name='+'.join([protocol] +
                                   [n.split('_')[0] for n in names]))
    if 'flip' in names:
        overrides['flip'] = True
    if 'zoom_in' in names:
        overrides['zoom_in'] = ritm_zoom_in_params(dataset)
    return overrides


def with_tta(predictor, protocol: ClickProtocol):
    """``predictor`` wrapped in a :class:`TTAPredictor` when the protocol
    asks for flip or zoom-in (unchanged otherwise, or if already
    wrapped)."""
    if not protocol.flip and protocol.zoom_in is None:
        return predictor
    if protocol.iou_on_padded_canvas:
        raise ValueError(f'protocol {protocol.name!r}: flip / zoom-in '
                         f'test-time augmentation scores on the image, not '
                         f'on the padded canvas (use the ritm protocol)')
    if isinstance(predictor, TTAPredictor):
        return predictor
    return TTAPredictor(predictor, flip=protocol.flip,
                        zoom_in=protocol.zoom_in)


def _view_predictor(base):
    """A second predictor on the same model (for the mirror image)."""
    try:
        return type(base)(base.model, device=str(base.device),
                          precision=base.precision, path=base.path,
                          size_divisor=base.size_divisor)
    except AttributeError as err:
        raise TypeError(f'flip TTA needs an InterFormerPredictor-like '
                        f'predictor (model, device, precision, path, '
                        f'size_divisor), got {type(base).__name__}: '
                        f'{err}') from None


def resize_image(image: np.ndarray, box: Box, shape) -> np.ndarray:
    """(H, W, 3) uint8 crop ``box`` resized to ``shape`` (bilinear,
    ``align_corners=True`` as RITM's ``get_roi_image_nd``), rounded to
    uint8."""
    crop = torch.from_numpy(np.ascontiguousarray(image[box.slices]))
    crop = crop.permute(2, 0, 1)[None].float()
    out = F.interpolate(crop, size=tuple(shape), mode='bilinear',
                        align_corners=True)
    out = out[0].permute(1, 2, 0).round().clamp(0, 255)
    return out.to(torch.uint8).numpy()


def _nearest_index(src: int, dst: int) -> np.ndarray:
    """Nearest source index of every destination pixel, with the
    ``align_corners=True`` correspondence of the image resize."""
    if dst == 1 or src == 1:
        return np.zeros(dst, np.int64)
    return np.rint(np.arange(dst) * ((src - 1) / (dst - 1))).astype(np.int64)


def crop_reference_label(ref_label: np.ndarray,
                         box: Box,
                         shape,
                         clicks: Sequence[Click],
                         radius: int = CLICK_RADIUS) -> np.ndarray:
    """The reference label as seen in the resized crop (see the module
    doc): nearest-neighbour resize, disks redrawn at ``radius`` view
    pixels."""
    rows = box.y0 + _nearest_index(box.height, shape[0])
    cols = box.x0 + _nearest_index(box.width, shape[1])
    view = ref_label[np.ix_(rows, cols)]
    view[(view == REF_DEFINITE_FG) | (view == REF_DEFINITE_BG)] = REF_UNKNOWN
    for click in clicks:
        if box.contains(click.y, click.x):
            y, x = map_click_to_roi(click, box, shape)
            add_click_disk(view, min(int(round(y)), shape[0] - 1),
                           min(int(round(x)), shape[1] - 1),
                           click.is_positive, radius)
    return view


class TTAPredictor(ClickSession):
    """A predictor with RITM's flip / ZoomIn test-time augmentation.

    The clicks, undo and the evaluated steps are the shared
    :class:`~interformer.interaction.click_session.ClickSession` (one
    ``click_step`` per click); its canvas is the image itself (predictions
    are on the image only). The step's decoder is the augmented ensemble.

    Args:
        base: the predictor to augment; it needs ``set_image``,
            ``canvas_shape`` and ``decode_logits(ref_label, prev_mask,
            step)`` (:class:`interformer.apis.InterFormerPredictor`).
        flip: average with the mirrored image.
        zoom_in: :class:`RitmZoomIn` settings, or None for no zoom.
        make_view: builds the mirror's predictor (default: the base's
            class on the same model).
    """

    def __init__(self,
                 base,
                 flip: bool = False,
                 zoom_in: Optional[dict] = None,
                 make_view: Optional[Callable] = None) -> None:
        super().__init__(size_divisor=1)  # the canvas is the image
        if not hasattr(base, 'decode_logits'):
            raise TypeError(f'TTA needs a predictor with decode_logits '
                            f'(InterFormerPredictor), got '
                            f'{type(base).__name__}')
        self.base = base
        self.flip = bool(flip)
        try:
            self.zoom = None if zoom_in is None else RitmZoomIn(**zoom_in)
        except TypeError as err:
            raise ValueError(f'zoom_in settings {zoom_in}: {err}') from None
        self.views = [base]
        if self.flip:
            self.views.append((make_view or _view_predictor)(base))
        self._image: Optional[np.ndarray] = None
        self._encoded: Optional[Box] = None

    # --------------------------------------------------------- interface
    @property
    def view_box(self) -> Optional[Box]:
        """The crop the last prediction saw (None: the whole image)."""
        return self._encoded

    def set_image(self, image: np.ndarray) -> None:
        canvas = self._canvas_for(image)
        self._image = np.ascontiguousarray(image)
        self._encode(None)
        self._image_ready(image.shape[:2], canvas)

    def reset(self) -> None:
        super().reset()
        if self.zoom is not None:
            self.zoom.reset()

    def add_click(self, y: int, x: int, positive: bool, *,
                  on_canvas: bool = False) -> None:
        self._no_canvas(on_canvas)
        super().add_click(y, x, positive)

    def undo(self) -> bool:
        """Remove the last click. The zoom-in state follows the clicks, so
        with zoom-in the remaining clicks are evaluated again."""
        undone = super().undo()
        if undone and self.zoom is not None:
            self.zoom.reset()
            self._steps = []
        return undone

    def predict(self, *, on_canvas: bool = False) -> Prediction:
        self._no_canvas(on_canvas)
        return super().predict()

    # --------------------------------------------------------- internals
    @staticmethod
    def _no_canvas(on_canvas: bool) -> None:
        if on_canvas:
            raise ValueError('TTA predictions are on the image; a protocol '
                             'scoring on the padded canvas cannot use them')

    def _encode(self, box: Optional[Box]) -> None:
        """Encode the views of ``box`` (None: the whole image)."""
        if box is None:
            image = self._image
        else:
            image = resize_image(self._image, box, self._view_shape(box))
        self.views[0].set_image(image)
        if self.flip:
            self.views[1].set_image(np.ascontiguousarray(image[:, ::-1]))
        self._encoded = box

    def _view_shape(self, box: Box):
        return roi_target_shape(box, self.zoom.target_size)

    def _decode_margin(self, ref: np.ndarray, prev_fg: Optional[np.ndarray],
                       step: int) -> np.ndarray:
        """The click step's decoder: the view of click ``step`` (the ROI
        from the previous probability and the clicks so far), decoded with
        flip; (H, W) float32 margin on the image."""
        clicks = [Click(*c) for c in self._clicks[:step + 1]
                  if c is not None]
        box = None
        if self.zoom is not None:
            prev = None if step == 0 else \
                self._steps[step - 1].prob > self.zoom.prob_thresh
            box = self.zoom.view(prev, clicks)
        if box != self._encoded:
            self._encode(box)
        return self._decode(ref, prev_fg, step, box, clicks)

    def _view_margin(self, view, ref: np.ndarray, prev: Optional[np.ndarray],
                     step: int) -> torch.Tensor:
        """(h, w) float32 margin of one encoded view."""
        canvas = tuple(view.canvas_shape)
        ref_c = pad_to_canvas(np.ascontiguousarray(ref), canvas, REF_UNKNOWN)
        prev_c = None if prev is None else pad_to_canvas(
            np.ascontiguousarray(prev), canvas, False)
        logits = view.decode_logits(ref_c, prev_c, step).float()
        upsample = getattr(getattr(view, 'model', None), 'upsample_logits',
                           None)
        if upsample is None:
            up = F.interpolate(logits, size=canvas, mode='bilinear',
                               align_corners=False)
        else:
            up = upsample(logits, canvas)
        return crop_to_image(fg_margin(up)[0], ref.shape)

    def _decode(self, ref: np.ndarray, prev_fg: Optional[np.ndarray],
                step: int, box: Optional[Box],
                clicks: Sequence[Click]) -> np.ndarray:
        if box is None:
            ref_v, prev_v = ref, prev_fg
        else:
            shape = self._view_shape(box)
            ref_v = crop_reference_label(ref, box, shape, clicks)
            prev_v = None
            if prev_fg is not None:
                prev_v = prev_fg[np.ix_(
                    box.y0 + _nearest_index(box.height, shape[0]),
                    box.x0 + _nearest_index(box.width, shape[1]))]
        with torch.inference_mode():
            margin = self._view_margin(self.views[0], ref_v, prev_v, step)
            if self.flip:
                mirrored = self._view_margin(
                    self.views[1], ref_v[:, ::-1],
                    None if prev_v is None else prev_v[:, ::-1], step)
                margin = 0.5 * (margin + mirrored.flip(-1))
            if box is None:
                return margin.numpy()
            prob = F.interpolate(
                foreground_probability(margin)[None, None],
                size=(box.height, box.width), mode='bilinear',
                align_corners=True)[0, 0]
            full = torch.zeros(ref.shape, dtype=torch.float32)
            full[box.slices] = prob
            return torch.logit(full).numpy()
