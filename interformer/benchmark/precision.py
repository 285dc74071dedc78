"""How much the opt-in bfloat16 path changes the answers.

Two measurements on a click-test dataset, with the same model:

* **mask agreement** (teacher-forced): the float32 fast path plays the
  click test; at every click the bfloat16 path decodes the *same*
  reference label (its own bf16 encoder features) and its mask is compared
  with the float32 mask by IoU on the model canvas. The mean over all
  clicks of all objects is ``mask_iou_mean``.
* **NoC**: two independent click tests (float32 and bfloat16, same seeds),
  NoC@85/90 of each and their difference.
"""
import copy
import time
from typing import Optional, Sequence

import numpy as np
import torch

from ..evaluation.click_test import instance_rng, run_click_test
from ..evaluation.metrics import iou, summarize
from ..interaction import get_protocol, next_click

__all__ = ['compare_precisions']


def _mask_from_logits(predictor, logits: torch.Tensor) -> np.ndarray:
    margin = logits[:, 1:] - logits[:, :1]
    up = predictor.model.upsample_logits(margin, predictor.canvas_shape)
    return (up[0, 0] > 0).numpy()


def _mask_agreement(fp32, bf16, dataset, indices, protocol, seed):
    """Per-click IoU between the fp32 and bf16 masks (fp32's labels)."""
    agreement = []
    for index in indices:
        sample = dataset.get_sample(index)
        rng = instance_rng(seed, index)
        fp32.set_image(sample['image'])
        bf16.set_image(sample['image'])
        gt = np.zeros(fp32.canvas_shape, np.int8)
        height, width = sample['gt'].shape
        gt[:height, :width] = sample['gt']
        pred = np.zeros(gt.shape, bool)
        clicks = []
        for step in range(protocol.max_clicks):
            click = next_click(gt, pred, clicks, protocol, rng)
            if click is None:
                break
            clicks.append(click)
            fp32.add_click(click.y, click.x, click.is_positive, on_canvas=True)
            pred = fp32.predict(on_canvas=True).mask
            with torch.inference_mode():
                other = _mask_from_logits(
                    bf16,
                    bf16.decode_logits(fp32.reference_label(), step=step))
            agreement.append(iou(pred.astype(np.int8), other))
    return np.asarray(agreement, np.float64)


def compare_precisions(
        model: torch.nn.Module,
        dataset,
        protocol='official',
        seed: int = 0,
        indices: Optional[Sequence[int]] = None,
        iou_thrs: Sequence[float] = (0.85, 0.9),
        num_seeds: int = 1,
) -> dict:
    """bf16 vs fp32 on a click-test dataset (see the module doc).

    Args:
        model: a segmentor (eval mode, weights loaded).
        dataset: ``len()`` and ``get_sample(i) -> dict(image, gt, name)``.
        protocol: click-test protocol (default 'official').
        seed: click-test seed.
        indices: instances to use (default: all).
        iou_thrs: NoC thresholds.
        num_seeds: click tests per precision (seeds ``seed, seed + 1,
            ...``; NoC is their mean). The tie-break seed alone moves NoC
            by about 0.1 on 50 objects, so several seeds separate the
            precision effect from that noise.

    Returns:
        dict: ``mask_iou_mean``, ``mask_iou_min``, ``num_clicks``,
        ``noc_fp32`` / ``noc_bf16`` (dicts thr -> NoC, mean over seeds),
        ``noc_diff`` (largest absolute NoC difference), per-seed NoCs and
        ``clicktest_s_fp32`` / ``clicktest_s_bf16`` (wall seconds of each
        click test).
    """
    from ..apis import InterFormerPredictor
    protocol = get_protocol(protocol)
    if indices is None:
        indices = range(len(dataset))
    indices = list(indices)
    # each its own copy: the deploy step prepares the model in place
    bf16 = InterFormerPredictor(
        copy.deepcopy(model), path='fast', precision='bf16')
    fp32 = InterFormerPredictor(model, path='fast', precision='fp32')
    agreement = _mask_agreement(fp32, bf16, dataset, indices, protocol, seed)
    result = dict(
        mask_iou_mean=float(agreement.mean()),
        mask_iou_min=float(agreement.min()),
        num_clicks=int(agreement.size),
        num_instances=len(indices))
    nocs = {}
    for name, predictor in (('fp32', fp32), ('bf16', bf16)):
        per_seed, seconds = [], []
        for offset in range(num_seeds):
            start = time.perf_counter()
            test = run_click_test(
                predictor,
                dataset,
                protocol,
                seed=seed + offset,
                indices=indices,
                progress=False)
            seconds.append(time.perf_counter() - start)
            summary = summarize([inst.ious for inst in test.instances],
                                iou_thrs, protocol.max_clicks)
            per_seed.append({
                key: summary[key]
                for key in summary if key.startswith('NoC@')
            })
        result[f'clicktest_s_{name}'] = seconds
        nocs[name] = {
            key: float(np.mean([noc[key] for noc in per_seed]))
            for key in per_seed[0]
        }
        result[f'noc_{name}'] = nocs[name]
        result[f'noc_{name}_per_seed'] = per_seed
    result['noc_diff'] = max(
        abs(nocs['fp32'][k] - nocs['bf16'][k]) for k in nocs['fp32'])
    return result
