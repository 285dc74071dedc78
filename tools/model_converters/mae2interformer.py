#!/usr/bin/env python
"""Convert official MAE pretraining weights for InterFormer's backbone.

The input is ``mae_pretrain_vit_base.pth`` / ``mae_pretrain_vit_large.pth``
from the MAE release (see ``pretrain/README.md``). The output holds the
``MAEWithSimpleFPN`` keys without the ``backbone.`` prefix, with the
pos-embed resized bicubically to the training grid, and is what
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` expects.

The keys are checked against the backbone of ``--config`` (default: the
official Light / Tiny config that matches the file's width, 768 / 1024):
the conversion fails when keys that a complete MAE file provides are
missing (a truncated or partial file, missing blocks) unless
``--allow-missing`` is given; the keys the MAE release never has
(relative-position bias, layer scale, SimpleFPN) are learned from their
init and reported separately.

Example::

    python tools/model_converters/mae2interformer.py \\
        pretrain/mae_pretrain_vit_base.pth \\
        pretrain/mae_pretrain_vit_base_interformer.pth
"""
import argparse
import os.path as osp
from typing import List, Optional

import torch

import interformer  # noqa: F401  (stack fixes + registration)
from interformer.models.backbones import MAEWithSimpleFPN
from interformer.models.converters import (
    check_state_dict,
    convert_mae_pretrain,
    is_mae_provided,
    load_checkpoint_file,
    save_checkpoint_atomic,
    unwrap_state_dict,
)
from interformer.utils.cli import UserError, add_debug_flag, run_tool
from interformer.utils.config import read_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: The official config of each MAE width.
CONFIG_BY_WIDTH = {
    768: osp.join(REPO, 'configs', 'interformer_light_coco_lvis_320k.py'),
    1024: osp.join(REPO, 'configs', 'interformer_tiny_coco_lvis_320k.py'),
}
MAX_LISTED = 8


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert MAE pretraining weights to InterFormer keys.')
    parser.add_argument('src', help='official MAE checkpoint (.pth)')
    parser.add_argument('dst', help='output file (written atomically)')
    parser.add_argument(
        '--config',
        help='config whose backbone the keys are checked against (default: '
        'the official Light/Tiny config of the file\'s width)')
    parser.add_argument(
        '--grid',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help='token grid of the backbone pos-embed (default: the config\'s '
        'img_size / patch_size, 32 32 for the official configs)')
    parser.add_argument(
        '--allow-missing',
        action='store_true',
        help='write the file even if keys that a complete MAE file '
        'provides are missing (they are then learned from their init)')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.grid is not None and min(args.grid) < 1:
        parser.error(f'--grid needs two positive sizes, got '
                     f'{args.grid[0]} {args.grid[1]}')
    return args


def backbone_config(config: Optional[str], state: dict) -> dict:
    """The backbone dict of ``config`` (or of the official config of the
    checkpoint's width)."""
    if config is None:
        if 'cls_token' not in state:
            raise UserError('not an MAE ViT checkpoint: it has no cls_token')
        width = state['cls_token'].shape[-1]
        config = CONFIG_BY_WIDTH.get(width)
        if config is None:
            raise UserError(
                f'no official config has embedding width {width}; pass the '
                'config of your backbone with --config')
    cfg = read_config(config)
    backbone = dict(cfg.model.get('backbone') or {})
    if backbone.get('type') != 'MAEWithSimpleFPN':
        raise UserError(f'--config {config}: model.backbone is '
                        f'{backbone.get("type")!r}, not MAEWithSimpleFPN')
    return backbone


def build_reference_backbone(backbone: dict, grid) -> MAEWithSimpleFPN:
    """The config's backbone at ``grid``, on the meta device (no memory)."""
    kwargs = {k: v for k, v in backbone.items() if k != 'type'}
    kwargs.pop('init_cfg', None)
    kwargs.pop('pretrained', None)
    patch = kwargs.get('patch_size', 16)
    kwargs['img_size'] = (grid[0] * patch, grid[1] * patch)
    with torch.device('meta'):
        return MAEWithSimpleFPN(**kwargs)


def config_grid(backbone: dict):
    size = backbone.get('img_size', 512)
    size = (size, size) if isinstance(size, int) else tuple(size)
    patch = backbone.get('patch_size', 16)
    return (size[0] // patch, size[1] // patch)


def _listed(keys: List[str]) -> str:
    more = len(keys) - MAX_LISTED
    return ', '.join(keys[:MAX_LISTED]) + (f' (+{more} more)'
                                           if more > 0 else '')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    raw = load_checkpoint_file(args.src)
    backbone = backbone_config(args.config, unwrap_state_dict(raw))
    grid = tuple(args.grid) if args.grid else config_grid(backbone)
    state = convert_mae_pretrain(raw, target_grid=grid)
    report = check_state_dict(state, build_reference_backbone(backbone, grid))
    lost = [k for k in report.missing if is_mae_provided(k)]
    learned = [k for k in report.missing if not is_mae_provided(k)]
    print(f'{args.src}: mapped {len(report.mapped)}, missing {len(lost)} '
          f'(of the keys an MAE file provides), learned from their init '
          f'{len(learned)} (relative-position bias, layer scale, '
          f'SimpleFPN), unexpected {len(report.unexpected)}')
    if report.unexpected:
        print('unexpected: ' + _listed(report.unexpected))
    if lost:
        layers = sorted({int(k.split('.')[1]) for k in lost
                         if k.startswith('layers.')})
        whole = [i for i in layers
                 if not any(k.startswith(f'layers.{i}.') for k in state)]
        detail = (f'; blocks with no weights at all: {whole}'
                  if whole else '')
        message = (f'{args.src} lacks {len(lost)} of the '
                   f'{len(lost) + len(report.mapped)} keys a complete MAE '
                   f'file provides for this backbone{detail}: '
                   f'{_listed(lost)}')
        if not args.allow_missing:
            raise UserError(message + ' (--allow-missing writes it anyway)')
        print('warning: ' + message)
    save_checkpoint_atomic(state, args.dst)
    print(f'saved {len(state)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    run_tool(main)
