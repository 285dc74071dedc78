#!/usr/bin/env python
"""Convert official MAE pretraining weights for InterFormer's backbone.

The input is ``mae_pretrain_vit_base.pth`` / ``mae_pretrain_vit_large.pth``
from the MAE release (see ``pretrain/README.md``). The output holds the
``MAEWithSimpleFPN`` keys without the ``backbone.`` prefix, with the
pos-embed resized bicubically to the training grid, and is what
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` expects.

Example::

    python tools/model_converters/mae2interformer.py \\
        pretrain/mae_pretrain_vit_base.pth \\
        pretrain/mae_pretrain_vit_base_interformer.pth
"""
import argparse
import sys
from typing import List, Optional

import torch

import interformer  # noqa: F401  (stack fixes + registration)
from interformer.models.backbones import MAEWithSimpleFPN
from interformer.models.converters import (
    check_state_dict,
    convert_mae_pretrain,
    load_checkpoint_file,
    save_checkpoint_atomic,
)

HEAD_DIM = 64  # ViT-B/L use 64-d heads; heads only shape the bias tables


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert MAE pretraining weights to InterFormer keys.')
    parser.add_argument('src', help='official MAE checkpoint (.pth)')
    parser.add_argument('dst', help='output file (written atomically)')
    parser.add_argument(
        '--grid',
        type=int,
        nargs=2,
        default=(32, 32),
        metavar=('H', 'W'),
        help='token grid of the backbone pos-embed (img_size / patch)')
    return parser.parse_args(argv)


def build_reference_backbone(state: dict, grid) -> MAEWithSimpleFPN:
    """A meta-device backbone whose size is read from the weights."""
    try:
        embed_dims = state['cls_token'].shape[-1]
        patch = state['patch_embed.projection.weight'].shape[-1]
    except KeyError as err:
        raise ValueError(f'not an MAE ViT checkpoint: missing {err}') from err
    num_layers = len(
        {k.split('.')[1]
         for k in state if k.startswith('layers.')})
    if num_layers == 0:
        raise ValueError('not an MAE ViT checkpoint: no transformer blocks')
    num_heads = embed_dims // HEAD_DIM if embed_dims % HEAD_DIM == 0 else 1
    with torch.device('meta'):
        return MAEWithSimpleFPN(
            img_size=(grid[0] * patch, grid[1] * patch),
            patch_size=patch,
            embed_dims=embed_dims,
            num_layers=num_layers,
            num_heads=num_heads)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        state = convert_mae_pretrain(
            load_checkpoint_file(args.src), target_grid=args.grid)
        model = build_reference_backbone(state, args.grid)
        report = check_state_dict(state, model)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{args.src}: {report.summary()} (missing keys are learned from '
          'their init: relative-position bias, layer scale, SimpleFPN)')
    if report.unexpected:
        print('unexpected: ' + ', '.join(report.unexpected))
    save_checkpoint_atomic(state, args.dst)
    print(f'saved {len(state)} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
