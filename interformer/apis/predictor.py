"""``InterFormerPredictor``: encode an image once, answer every click fast.

The heavy backbone (MAE ViT + SimpleFPN) runs in :meth:`set_image`; each click
only updates the reference label and runs the light I-MSA neck + UPerHead on
the cached features. The click test (``interformer.evaluation``), the web demo
and the benchmark all go through this class, so what the demo shows is what
the benchmark measured.

Two computation paths give the same answer:

* ``path='fast'`` (default): the model deployed in place once, in the
  constructor (:func:`interformer.models.deploy.deploy_model`: BatchNorm
  folded, fused oneDNN layers on channels-last maps, bf16 for
  ``precision='bf16'``), and the per-image work the model splits off done
  once per image: the keys/values of every cross-attention block
  (``image_key_values``) and the backbone's per-grid position / bias
  caches. In float32 its logits equal the reference path's to 1e-4. Modules
  the deploy step does not cover run their own forward. After editing the
  model's weights in place, call :meth:`InterFormerPredictor.redeploy`.
* ``path='reference'``: the segmentor's own modules (their fused routes
  suspended), everything in the neck and head recomputed at every click,
  as the official code does.

``precision='bf16'`` (opt-in) runs encoder, neck and head in bfloat16 on the
fast path (attention scores, softmax and norm statistics in float32, logits
returned in float32); on the reference path it uses CPU autocast.

Coordinates are (y, x) = (row, column) in pixels of the original image. The
model canvas is the image padded at the bottom/right to a multiple of 32.
"""
import contextlib
import inspect
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.config import Config

from ..interaction import pad_to_canvas
from ..interaction.click_session import ClickSession, Prediction
from ..models.deploy import DeployReport, deploy_model, deploy_suspended
from .inference import init_model

__all__ = ['InterFormerPredictor', 'Prediction', 'PRECISIONS', 'PATHS']

PRECISIONS = ('fp32', 'bf16')
PATHS = ('fast', 'reference')
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


class InterFormerPredictor(ClickSession):
    """Interactive segmentation of one object at a time on a cached image.

    Args:
        model_or_config: a built segmentor (``ClickSegmentor``), or a config
            path / :class:`Config` to build one from.
        checkpoint: checkpoint to load when a config is given.
        device: torch device string.
        precision: ``'fp32'`` (default, exact) or ``'bf16'`` (encoder, neck
            and head in bfloat16; logits are returned in float32).
        size_divisor: the canvas is padded to a multiple of this.
        path: ``'fast'`` (default) or ``'reference'`` (see the module doc).
    """

    def __init__(self,
                 model_or_config: Union[torch.nn.Module, str, Config],
                 checkpoint: Optional[str] = None,
                 device: str = 'cpu',
                 precision: str = 'fp32',
                 size_divisor: int = 32,
                 path: str = 'fast') -> None:
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {PRECISIONS}, '
                             f'got {precision!r}')
        if path not in PATHS:
            raise ValueError(f'path must be one of {PATHS}, got {path!r}')
        super().__init__(size_divisor)
        if isinstance(model_or_config, torch.nn.Module):
            if checkpoint is not None:
                raise ValueError('checkpoint is only used with a config; '
                                 'load it into the model yourself')
            self.model = model_or_config.to(device).eval()
        else:
            self.model = init_model(model_or_config, checkpoint, device)
        self.device = torch.device(device)
        self.precision = precision
        self.path = path
        preprocessor = getattr(self.model, 'data_preprocessor', None)
        mean = getattr(preprocessor, 'mean', None)
        std = getattr(preprocessor, 'std', None)
        self._mean = (mean if mean is not None else torch.tensor(
            IMAGENET_MEAN).view(3, 1, 1)).to(self.device, torch.float32)
        self._std = (std if std is not None else torch.tensor(
            IMAGENET_STD).view(3, 1, 1)).to(self.device, torch.float32)
        # ClickSegmentorZoomIn needs the click index for zoom_in_start_step
        params = inspect.signature(self.model.decode_clicks).parameters
        self._pass_step = 'step' in params
        self._pass_key_values = 'key_values' in params and hasattr(
            self.model, 'image_key_values')
        #: What the deploy step did (None on the reference path).
        self.deploy_report: Optional[DeployReport] = None
        self.redeploy()
        self._features: Optional[List[torch.Tensor]] = None
        # the decoder's inputs: the features as the (deployed) backbone
        # returns them and the cross-attention keys/values (fast path)
        self._decoder_feats: Optional[List[torch.Tensor]] = None
        self._key_values: Optional[list] = None

    # ------------------------------------------------------------------ image
    @property
    def features(self) -> List[torch.Tensor]:
        """The cached image features (4 pyramid levels)."""
        self._require_image()
        return self._features

    def set_image(self, image: np.ndarray, features=None) -> None:
        """Encode an image once; clears the clicks.

        Args:
            image: (H, W, 3) uint8 RGB array.
            features: optional encoder outputs of this image from a feature
                store (:class:`~interformer.deploy.ImageFeatures` or a
                feature-file path, see ``tools/encode_images.py``); the
                backbone then does not run. Features of another model or
                image are refused (sha256).
        """
        canvas = self._canvas_for(image)
        x = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        x = (x.permute(2, 0, 1).float() - self._mean) / self._std
        x = pad_to_canvas(x, canvas, 0.0)
        self._ensure_deployed()
        with torch.inference_mode(), self._route():
            if features is None:
                feats = list(self.model.extract_image_feats(x[None]))
            else:
                feats = self._stored_features(features, image, canvas)
            self._key_values = None
            if self.path == 'fast' and self._pass_key_values:
                self._key_values = self.model.image_key_values(feats)
        self._features = [
            f.float().contiguous() if f.is_floating_point() else f
            for f in feats
        ]
        self._decoder_feats = feats if self.path == 'fast' else \
            self._features
        self._image_ready(image.shape[:2], canvas)

    def _stored_features(self, features, image: np.ndarray,
                         canvas: Tuple[int, int]) -> List[torch.Tensor]:
        """The 4 pyramid maps of a store entry, checked to be this model's
        (weights sha256) and this image's."""
        from ..deploy.export import weights_sha256
        from ..deploy.feature_store import check_features
        stored = check_features(features, weights_sha256(self.model), image,
                                canvas)
        return [
            torch.from_numpy(stored.arrays[f'feat{i}'].astype(
                np.float32)).to(self.device) for i in range(4)
        ]

    def _decode_margin(self, ref: np.ndarray, prev_mask: Optional[np.ndarray],
                       step: int) -> torch.Tensor:
        """The click step's decoder: (Hc, Wc) float32 CPU foreground margin
        (foreground minus background logit) on the canvas."""
        logits = self._decode(ref, prev_mask, step)
        with torch.inference_mode():
            # the margin is linear in the logits: upsample one channel
            return self.model.upsample_logits(
                logits[:, 1:] - logits[:, :1],
                self._canvas_shape)[0, 0].cpu()

    def decode_logits(self,
                      ref_label: np.ndarray,
                      prev_mask: Optional[np.ndarray] = None,
                      step: Optional[int] = None) -> torch.Tensor:
        """Decoder logits for a given reference label (no state change).

        Used to compare paths and precisions on identical inputs.

        Args:
            ref_label: (Hc, Wc) uint8 reference label on the canvas.
            prev_mask: (Hc, Wc) bool previous mask (zoom-in models only).
            step: 0-based click index (zoom-in models only).

        Returns:
            Tensor: (1, 2, Hc/4, Wc/4) float32 CPU logits at stride 4.
        """
        ref_label = self._checked_ref_label(ref_label)
        return self._decode(ref_label, prev_mask, step).cpu()

    def _decode(self, ref: np.ndarray, prev_mask: Optional[np.ndarray],
                step: Optional[int]) -> torch.Tensor:
        """Run neck + head; returns (1, 2, Hc/4, Wc/4) float32 logits."""
        ref_t = torch.from_numpy(ref)[None, None].to(self.device)
        prev_t = None
        if prev_mask is not None:
            prev_t = torch.from_numpy(prev_mask)[None, None].to(self.device)
        extra = dict(step=step) if self._pass_step else {}
        if self._ensure_deployed() and self._key_values is not None:
            with torch.inference_mode():  # made for another deployment
                self._key_values = self.model.image_key_values(
                    self._decoder_feats)
        if self._key_values is not None:
            extra['key_values'] = self._key_values
        with torch.inference_mode(), self._route():
            logits = self.model.decode_clicks(
                self._decoder_feats, ref_t, prev_mask=prev_t, **extra)
        self._check_logits(logits)
        return logits.float()

    # ----------------------------------------------------------------- deploy
    def redeploy(self) -> Optional[DeployReport]:
        """(Re)apply the deploy step to the model (fast path only).

        The constructor does it once. The fused routes are prepared from the
        weights, so call this after editing the model's weights in place
        (loading a checkpoint, fine-tuning), then :meth:`set_image`. Two
        fast predictors of different precisions on one model re-deploy it
        in turn when their calls alternate: give each its own model copy.
        """
        if self.path == 'fast' and self.device.type == 'cpu':
            self.deploy_report = deploy_model(self.model, self.precision)
        return self.deploy_report

    def _ensure_deployed(self) -> bool:
        """Re-deploy if another predictor re-deployed the shared model
        (e.g. in another precision) since; True if it did."""
        if self.deploy_report is None or getattr(
                self.model, 'deploy_report', None) is self.deploy_report:
            return False
        self.redeploy()
        return True

    def _route(self):
        """The context of every model call: the reference path suspends the
        fused routes; bf16 uses CPU autocast where nothing is deployed."""
        stack = contextlib.ExitStack()
        if self.path == 'reference':
            stack.enter_context(deploy_suspended())
        deployed = self.deploy_report is not None and bool(
            self.deploy_report.deployed)
        if self.precision == 'bf16' and not deployed:
            stack.enter_context(
                torch.autocast(self.device.type, dtype=torch.bfloat16))
        return stack

