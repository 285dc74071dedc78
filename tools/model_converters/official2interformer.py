#!/usr/bin/env python
"""Convert an official InterFormer checkpoint (mmseg 0.x) to this codebase.

The official parameter names are kept 1:1, so the conversion unwraps the
runner file (``state_dict``/``model``, ``module.``) and, with ``--config``,
checks every key and shape against a model built from that config (built on
the meta device: no memory, no init).

Example::

    python tools/model_converters/official2interformer.py \\
        interformer_light.pth work_dirs/interformer_light_converted.pth \\
        --config configs/interformer_light_coco_lvis_320k.py
"""
import argparse
from typing import List, Optional

import torch

import interformer  # noqa: F401  (stack fixes + registration)
from interformer.models.converters import (
    check_state_dict,
    convert_official_interformer,
    load_checkpoint_file,
    save_checkpoint_atomic,
)
from interformer.utils.cli import UserError, add_debug_flag, run_tool
from interformer.utils.config import read_config

MAX_LISTED = 10


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an official InterFormer checkpoint.')
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output file (written atomically)')
    parser.add_argument(
        '--config', help='config whose model the keys are checked against')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='fail on missing or unexpected keys (needs --config)')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.strict and not args.config:
        parser.error('--strict needs --config')
    return args


def build_model(config_path: str) -> torch.nn.Module:
    """Build the config's model, on the meta device when it allows it.

    The meta device needs no memory and no init; modules that compute
    Python numbers from tensors at build time fail there, so the model is
    then built on the CPU instead (no weights are initialised or loaded).
    """
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = read_config(config_path)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    try:
        with torch.device('meta'):
            return MODELS.build(cfg.model)
    except (RuntimeError, NotImplementedError):
        return MODELS.build(cfg.model)


def _listed(keys: List[str]) -> str:
    more = len(keys) - MAX_LISTED
    return ', '.join(
        keys[:MAX_LISTED]) + (f' (+{more} more)' if more > 0 else '')


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    renames = []
    state = convert_official_interformer(
        load_checkpoint_file(args.src), renames=renames)
    report = check_state_dict(state, build_model(
        args.config)) if args.config else None
    print(f'{args.src}: {len(state)} tensors, {len(renames)} renamed')
    for old, new in renames[:MAX_LISTED]:
        print(f'  {old} -> {new}')
    if report is None:
        print('no --config: key-level conversion only')
    else:
        print(f'against {args.config}: {report.summary()}')
        if report.missing:
            print('missing: ' + _listed(report.missing))
        if report.unexpected:
            print('unexpected: ' + _listed(report.unexpected))
        if args.strict and (report.missing or report.unexpected):
            raise UserError(f'{args.src}: keys differ from the model of '
                            f'{args.config} (--strict)')
    save_checkpoint_atomic(
        dict(state_dict=state, meta=dict(converted_from=args.src)), args.dst)
    print(f'saved {args.dst}')
    return 0


if __name__ == '__main__':
    run_tool(main)
