"""Deploy a segmentor for inference, in place (``switch_to_deploy``).

:func:`deploy_model` calls ``switch_to_deploy(dtype)`` on every
:class:`~interformer.models.utils.Deployable` module of a model (the
backbone, the I-MSA blocks, PatchMerging and neck, the decode head), as
``fuse()`` does in ultralytics or ``switch_to_deploy()`` in mmcv / RepVGG.
Each prepares its fused inference state from its weights (BatchNorm
folded, oneDNN-packed weights, channels-last, bfloat16 for
``precision='bf16'``) and routes its batch-1 CPU forward through it; the
parameters and the state dict are unchanged. A plain mmseg ``UPerHead`` is
turned into :class:`~interformer.models.decode_heads.DeployableUPerHead`
(the same class plus the fused route). A module that cannot be deployed (a
subclass overriding the forward, an unsupported part) keeps its own route,
with one log line saying why.

Call :func:`deploy_model` again after editing weights in place (it
rebuilds every fused state); :func:`revert_deploy` drops them.
"""
import logging
from dataclasses import dataclass, field
from typing import Dict, List

import torch
import torch.nn as nn
from mmseg.models.decode_heads import UPerHead

from .decode_heads import DeployableUPerHead
from .utils.deployable import Deployable, DeployRefused, deploy_suspended
from .utils.fused_ops import onednn_available

__all__ = [
    'deploy_model', 'revert_deploy', 'DeployReport', 'deploy_suspended',
    'PRECISION_DTYPES'
]

logger = logging.getLogger('interformer.deploy')

#: Working dtype of each deploy precision.
PRECISION_DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}


@dataclass
class DeployReport:
    """What :func:`deploy_model` did.

    Attributes:
        precision: ``'fp32'`` or ``'bf16'``.
        deployed: names of the modules now on their fused route.
        skipped: module name -> why it keeps its own route.
    """
    precision: str
    deployed: List[str] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f'deploy ({self.precision}): {len(self.deployed)} modules '
                 f'fused, {len(self.skipped)} kept']
        lines += [
            f'  kept {name}: {why}' for name, why in self.skipped.items()
        ]
        return '\n'.join(lines)


def deploy_model(model: nn.Module, precision: str = 'fp32') -> DeployReport:
    """Switch every deployable module of ``model`` to its fused route.

    The model is put in eval mode (the fused routes are inference only and
    are skipped in training mode).

    Args:
        model: a segmentor (or any module tree).
        precision: ``'fp32'`` (equal to the modules' own route to 1e-4) or
            ``'bf16'`` (bfloat16 maps; attention scores, softmax, norm
            statistics and logits in float32).

    Returns:
        DeployReport: the modules deployed and those kept, with reasons
        (also kept as ``model.deploy_report``).
    """
    if precision not in PRECISION_DTYPES:
        raise ValueError(f'precision must be one of '
                         f'{tuple(PRECISION_DTYPES)}, got {precision!r}')
    dtype = PRECISION_DTYPES[precision]
    report = DeployReport(precision)
    model.eval()
    if not onednn_available():
        revert_deploy(model)
        report.skipped[''] = 'the oneDNN CPU ops are unavailable'
        logger.warning('deploy: %s', report.skipped[''])
        return report
    for name, module in model.named_modules():
        if type(module) is UPerHead:
            # adds the fused route only: same parameters, same forward
            module.__class__ = DeployableUPerHead
        elif isinstance(module, UPerHead) and not isinstance(
                module, Deployable):
            report.skipped[name] = (f'{type(module).__name__} is a subclass '
                                    f'of UPerHead (no fused route)')
            logger.warning('deploy: %s keeps its own forward: %s', name or
                        type(module).__name__, report.skipped[name])
    for name, module in model.named_modules():
        if not isinstance(module, Deployable):
            continue
        try:
            module.switch_to_deploy(dtype)
        except DeployRefused as err:
            report.skipped[name] = str(err)
            logger.warning('deploy: %s keeps its own forward: %s', name or
                        type(module).__name__, err)
        else:
            report.deployed.append(name)
    model.deploy_report = report  # who deployed it last (see the predictor)
    return report


def revert_deploy(model: nn.Module) -> None:
    """Drop every fused state: the modules run their own ops again."""
    for module in model.modules():
        if isinstance(module, Deployable):
            module.revert_deploy()
    model.deploy_report = None
