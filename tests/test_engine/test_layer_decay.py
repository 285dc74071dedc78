"""Layer-wise lr decay groups and the lr schedule of schedule_320k.py.

model.md §14: layer id 0 = cls token / pos embed / patch embed, k + 1 = ViT
block k, L + 1 = everything else (SimpleFPN, neck, heads); lr = base_lr *
decay ** (L + 1 - id); no weight decay for 1-D parameters and biases.
"""
import copy
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS, PARAM_SCHEDULERS
from torch import nn

import interformer  # noqa: F401

BASE_LR = 1e-4
WEIGHT_DECAY = 0.05


class TinySegmentor(nn.Module):
    """Just enough of a segmentor for the constructor: a backbone + heads."""

    def __init__(self, num_layers):
        super().__init__()
        self.backbone = MODELS.build(
            dict(
                type='MAEWithSimpleFPN',
                img_size=64,
                embed_dims=32,
                num_layers=num_layers,
                num_heads=2,
                out_dims=(8, 8, 8, 8)))
        self.neck = nn.Linear(8, 8)
        self.decode_head = nn.Conv2d(8, 2, 1)
        self.frozen = nn.Parameter(torch.zeros(3), requires_grad=False)


def expected_layer_id(name, num_layers):
    if name in ('backbone.cls_token', 'backbone.pos_embed') or \
            name.startswith('backbone.patch_embed.'):
        return 0
    if name.startswith('backbone.layers.'):
        return int(name.split('.')[2]) + 1
    return num_layers + 1


def _schedule_cfg(repo_root):
    return Config.fromfile(
        osp.join(repo_root, 'configs/_base_/schedules/schedule_320k.py'))


def _groups(repo_root, num_layers, decay, deprecated=False):
    cfg = copy.deepcopy(_schedule_cfg(repo_root).optim_wrapper)
    if deprecated:  # mmseg's older name, with its own key name
        cfg.constructor = 'LayerDecayOptimizerConstructor'
        cfg.paramwise_cfg = dict(num_layers=num_layers, layer_decay_rate=decay)
    else:
        cfg.paramwise_cfg.update(num_layers=num_layers, decay_rate=decay)
    model = TinySegmentor(num_layers)
    with DefaultScope.overwrite_default_scope('mmseg'):
        wrapper = build_optim_wrapper(model, cfg)
    names = {id(p): n for n, p in model.named_parameters()}
    return model, wrapper.optimizer, names


@pytest.mark.parametrize('num_layers,decay', [(12, 0.65), (24, 0.75)])
def test_layer_decay_matches_model_md(repo_root, num_layers, decay):
    model, optimizer, names = _groups(repo_root, num_layers, decay)
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.defaults['betas'] == (0.9, 0.999)
    seen = []
    for group in optimizer.param_groups:
        for param in group['params']:
            name = names[id(param)]
            seen.append(name)
            layer_id = expected_layer_id(name, num_layers)
            lr = BASE_LR * decay**(num_layers + 1 - layer_id)
            assert group['lr'] == pytest.approx(lr, rel=1e-12), name
            no_wd = param.ndim == 1 or name.endswith('.bias')
            assert group['weight_decay'] == (0.0
                                             if no_wd else WEIGHT_DECAY), name
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(seen) == sorted(trainable)

    by_name = {
        names[id(p)]: g
        for g in optimizer.param_groups
        for p in g['params']
    }
    L = num_layers
    checks = {
        'backbone.patch_embed.projection.weight': decay**(L + 1),
        'backbone.layers.0.attn.qkv.weight': decay**L,
        f'backbone.layers.{L - 1}.attn.qkv.weight': decay,
        'backbone.fpn.rescale_ops.2.0.weight': 1.0,
        'decode_head.weight': 1.0,
    }
    for name, scale in checks.items():
        assert by_name[name]['lr'] == pytest.approx(BASE_LR * scale)
    # model.md's quirks: these still get weight decay
    for name in ('backbone.pos_embed', 'backbone.cls_token',
                 'backbone.layers.0.attn.relative_position_bias_table'):
        assert by_name[name]['weight_decay'] == WEIGHT_DECAY
    assert by_name['backbone.layers.0.gamma_1']['weight_decay'] == 0.0


def test_deprecated_constructor_builds_the_same_groups(repo_root):
    _, new, names = _groups(repo_root, 4, 0.65)
    _, old, old_names = _groups(repo_root, 4, 0.65, deprecated=True)

    def table(optimizer, names):
        return sorted((names[id(p)], g['lr'], g['weight_decay'])
                      for g in optimizer.param_groups for p in g['params'])

    assert table(new, names) == table(old, old_names)


def test_poly_schedule_with_warmup_is_mmcv_exact(repo_root):
    """lr(t) = lr * (r + (1 - r) * min(t, W) / W) * (1 - t / T), 0-based t.

    Checked on a shortened copy of the schedule (same scheduler types and
    the same `end + 1` convention), at every step.
    """
    cfg = _schedule_cfg(repo_root)
    warmup, total, ratio = 1500, 320000, 1e-6
    linear, poly = cfg.param_scheduler
    assert (linear.type, linear.start_factor, linear.end) == \
        ('LinearLR', ratio, warmup + 1)
    assert (poly.type, poly.power, poly.eta_min, poly.end) == \
        ('PolyLR', 1.0, 0.0, total + 1)
    assert cfg.train_cfg.max_iters == total
    assert cfg.default_hooks.checkpoint.interval == 20000
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.logger.interval == 200

    short_w, short_t = 15, 400
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=BASE_LR)
    schedulers = []
    for sched, end in ((linear, short_w + 1), (poly, short_t + 1)):
        sched = dict(copy.deepcopy(sched), end=end, optimizer=optimizer)
        schedulers.append(PARAM_SCHEDULERS.build(sched))
    for t in range(short_t):
        expected = BASE_LR * (ratio +
                              (1 - ratio) * min(t, short_w) / short_w) * (
                                  1 - t / short_t)
        assert optimizer.param_groups[0]['lr'] == pytest.approx(
            expected, rel=1e-9, abs=1e-18), t
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
