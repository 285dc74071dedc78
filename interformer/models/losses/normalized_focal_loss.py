"""Normalized Focal Loss (NFL) for binary click segmentation.

With ``z = l_fg - l_bg`` (two-class logits) and ``p = sigmoid(z)``, the
probability of the true class is ``p_t = p`` on object pixels and ``1 - p``
on background pixels. The focal factor ``(1 - p_t) ** gamma`` is rescaled
per image so that it sums to the number of valid pixels (the rescaling
factor is detached), which keeps the loss scale of plain cross-entropy
while still focusing on hard pixels::

    beta_i  = (1 - p_t,i) ** gamma * valid_i
    w_i     = beta_i * stopgrad(sum(valid) / sum(beta))
    loss    = sum_i(-alpha_t * w_i * log(p_t,i)) / sum(valid)   per image

``alpha_t = alpha`` on object pixels and ``1 - alpha`` on background. The
batch loss is the mean over images (an image without valid pixels adds 0).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor

__all__ = ['NormalizedFocalLoss']

IGNORE_INDEX = 255
EPS = 1e-12


@MODELS.register_module()
class NormalizedFocalLoss(nn.Module):
    """mmseg-style NFL module (``loss_decode=dict(type=...)``).

    Args:
        alpha: weight of object pixels; background gets ``1 - alpha``.
        gamma: focusing exponent.
        loss_weight: multiplier of the loss.
        ignore_index: label of pixels left out (overridden per call by the
            head's ``ignore_index``).
        loss_name: key in the loss dict; must start with ``loss_`` to be
            added to the total.
    """

    def __init__(self,
                 alpha: float = 0.5,
                 gamma: float = 2.0,
                 loss_weight: float = 1.0,
                 ignore_index: int = IGNORE_INDEX,
                 loss_name: str = 'loss_nfl') -> None:
        super().__init__()
        if not 0. <= alpha <= 1.:
            raise ValueError(f'NormalizedFocalLoss: alpha must be in [0, 1],'
                             f' got {alpha}')
        if gamma < 0:
            raise ValueError(f'NormalizedFocalLoss: gamma must be >= 0, got '
                             f'{gamma}')
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.loss_weight = float(loss_weight)
        self.ignore_index = ignore_index
        self._loss_name = loss_name

    @property
    def loss_name(self) -> str:
        """Name of the loss in the loss dict."""
        return self._loss_name

    @staticmethod
    def foreground_logit(cls_score: Tensor) -> Tensor:
        """(B, 2, H, W) -> ``l_fg - l_bg``; (B, 1, H, W) -> itself; both
        as (B, H, W)."""
        if cls_score.dim() != 4 or cls_score.shape[1] not in (1, 2):
            raise ValueError(f'NormalizedFocalLoss: cls_score must be (B, 2, '
                             f'H, W) or (B, 1, H, W), got '
                             f'{tuple(cls_score.shape)}')
        if cls_score.shape[1] == 2:
            return cls_score[:, 1] - cls_score[:, 0]
        return cls_score[:, 0]

    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: Optional[int] = None,
                **kwargs) -> Tensor:
        """Compute the loss.

        Args:
            cls_score: (B, 2, H, W) logits (background, object), or
                (B, 1, H, W) object logits.
            label: (B, H, W) with 1 object, 0 background, ``ignore_index``
                ignored.
            weight: optional (B, H, W) per-pixel weight.
            ignore_index: overrides the constructor value when given.

        Returns:
            Tensor: scalar loss.
        """
        logit = self.foreground_logit(cls_score)
        if label.shape != logit.shape:
            raise ValueError(f'NormalizedFocalLoss: label shape '
                             f'{tuple(label.shape)} does not match the '
                             f'logits {tuple(logit.shape)}')
        if ignore_index is None:
            ignore_index = self.ignore_index
        valid = label != ignore_index
        is_fg = label == 1
        if bool(((label != 0) & ~is_fg & valid).any()):
            raise ValueError('NormalizedFocalLoss: labels must be 0, 1 or '
                             f'ignore_index ({ignore_index})')
        logit = logit.float()
        valid_f = valid.float()
        log_pt = F.logsigmoid(torch.where(is_fg, logit, -logit))
        beta = (1. - log_pt.exp()).pow(self.gamma) * valid_f
        num_valid = valid_f.sum(dim=(1, 2), keepdim=True)
        scale = (num_valid / (beta.sum(dim=(1, 2), keepdim=True) + EPS))
        beta = beta * scale.detach()
        alpha_t = torch.where(is_fg, self.alpha, 1. - self.alpha)
        pixel_loss = -alpha_t * beta * log_pt
        if weight is not None:
            pixel_loss = pixel_loss * weight
        pixel_loss = torch.where(valid, pixel_loss, 0.)
        per_image = pixel_loss.sum(dim=(1, 2)) / (num_valid.flatten() + EPS)
        return self.loss_weight * per_image.mean()
