"""Train an InterFormer model with mmengine's Runner.

Examples::

    python tools/train.py configs/interformer_light_coco_lvis_320k.py
    bash tools/dist_train.sh configs/interformer_light_coco_lvis_320k.py 4 \\
        --seed 42 --no-validate

Without CUDA, ``--launcher pytorch`` (torchrun) runs on CPU processes with
gloo and BN instead of NCCL and SyncBN.
"""
import argparse
import logging
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

import interformer  # noqa: F401  (stack fixes + registration)
from interformer.compat import setup_cpu_distributed
from interformer.utils.cli import UserError, add_debug_flag, run_tool
from interformer.utils.config import load_config
from interformer.utils.device import check_launcher


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train an InterFormer model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='where logs and checkpoints go '
        '(default: work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='resume from the latest checkpoint of the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision (GPU: AmpOptimWrapper, CPU: bfloat16 autocast)')
    parser.add_argument(
        '--amp-dtype',
        choices=['float16', 'bfloat16'],
        default=None,
        help='autocast dtype for --amp (GPU default float16; CPU bfloat16)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config entries, key=value (e.g. '
        'train_cfg.max_iters=1000)')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm'],
        default='none',
        help='job launcher')
    parser.add_argument(
        '--seed', type=int, default=None, help='random seed (all ranks)')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not validate during training')
    # torch.distributed.launch passes --local-rank; torchrun uses the env.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def enable_amp(cfg: Config, dtype: Optional[str] = None) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision."""
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper in ('AmpOptimWrapper', 'CPUAmpOptimWrapper'):
        print_log(
            'AMP is already enabled in the config.',
            logger='current',
            level=logging.WARNING)
        return
    if wrapper != 'OptimWrapper':
        raise UserError(f'--amp needs optim_wrapper.type="OptimWrapper", '
                        f'the config has {wrapper!r}')
    if torch.cuda.is_available():
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
        cfg.optim_wrapper.dtype = dtype or 'float16'
    else:
        if dtype == 'float16':
            raise UserError('--amp-dtype float16 needs CUDA; use bfloat16 '
                            'on CPU')
        cfg.optim_wrapper.type = 'CPUAmpOptimWrapper'
        cfg.optim_wrapper.dtype = 'bfloat16'


def main(argv=None) -> None:
    args = parse_args(argv)
    check_launcher(args.launcher)
    # overrides checked against the config, '${key}' references resolved
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher

    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    if args.amp:
        enable_amp(cfg, args.amp_dtype)
    if args.seed is not None:
        cfg.setdefault('randomness', {})['seed'] = args.seed
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    cfg.resume = args.resume

    if args.launcher == 'pytorch' and not torch.cuda.is_available():
        setup_cpu_distributed(cfg)  # gloo group, CPU DDP wrapper, BN

    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == '__main__':
    run_tool(main)
