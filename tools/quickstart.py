"""Quickstart: train a small InterFormer on generated data and click-test it.

    python tools/quickstart.py [--time-budget 420] \
        [--work-dir work_dirs/quickstart]

Downloads nothing. Writes a procedural COCO-panoptic dataset, trains
``configs/interformer_quickstart.py`` through mmengine's Runner for a
wall-clock budget, click-tests the model before and after training on
held-out generated instances, and prints the NoC tables and the commands to
evaluate on GrabCut / Berkeley / DAVIS / SBD and to open the demo. A rerun
reuses the generated data. See :mod:`interformer.quickstart.runner`.
"""
import argparse
import warnings

# Import-time notices of mmcv-lite / mmseg that do not apply here.
warnings.filterwarnings('ignore', message='Fail to import ``MultiScale')
warnings.filterwarnings('ignore', message='For binary segmentation')
warnings.filterwarnings('ignore', message='``build_loss`` would be')

from interformer.quickstart.runner import (  # noqa: E402
    DEFAULT_CONFIG,
    DEFAULT_OUT_DIR,
    run_quickstart,
)
from interformer.utils.cli import add_debug_flag, run_tool  # noqa: E402
from interformer.utils.device import check_device  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Train a small InterFormer on generated data in minutes '
        'and click-test it before and after training')
    parser.add_argument('--work-dir', '--out', dest='work_dir',
                        default=DEFAULT_OUT_DIR,
                        help=f'output folder (default: {DEFAULT_OUT_DIR}); '
                        '--out is an alias')
    parser.add_argument('--time-budget', type=float, default=420.0,
                        help='training seconds (default: 420, which keeps '
                        'the whole run under 10 minutes on 2 CPU cores)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-eval-instances', type=int, default=40,
                        help='held-out instances in the click test')
    parser.add_argument('--device', default=None,
                        help='torch device (default: cuda if available, '
                        'else cpu)')
    parser.add_argument('--data-root', default=None,
                        help='generated dataset folder (default: '
                        '<work-dir>/data)')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='quickstart config')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.time_budget <= 0:
        parser.error(f'--time-budget must be > 0, got {args.time_budget}')
    if args.num_eval_instances < 1:
        parser.error('--num-eval-instances must be >= 1, got '
                     f'{args.num_eval_instances}')
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.device is not None:
        check_device(args.device)
    return run_quickstart(
        out_dir=args.work_dir,
        time_budget=args.time_budget,
        seed=args.seed,
        num_eval_instances=args.num_eval_instances,
        device=args.device,
        config=args.config,
        data_root=args.data_root)


if __name__ == '__main__':
    run_tool(main)
