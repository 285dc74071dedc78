"""NoC click test of an InterFormer model (RITM or official protocol).

    python tools/clicktest.py CONFIG CHECKPOINT --dataset grabcut \
        --data-root data/GrabCut [--protocol ritm|official] \
        [--precision fp32|bf16] [--tta flip,zoom_in]

A lone CHECKPOINT uses the only ``*.py`` next to it as its config. Prints
RITM's results table plus encoder s/image and decoder s/click, and writes a
table (.txt), every instance's clicks and IoUs (.json) and the mIoU curve
(.png) to ``--work-dir``. Multi-process: ``tools/dist_clicktest.sh``.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

from interformer.datasets.click_eval import CLICK_EVAL_DATASETS
from interformer.evaluation import (
    build_click_test_dataset,
    build_predictor,
    finalize_distributed,
    get_protocol,
    init_distributed,
    resolve_config_and_checkpoint,
    results_table,
    run_click_test,
    save_report,
    timing_table,
    tta_overrides,
)
from interformer.evaluation.distributed import LAUNCHERS, local_device
from interformer.evaluation.runner import dataset_display_name
from interformer.interaction import PROTOCOL_PRESETS
from interformer.utils.cli import add_debug_flag, run_tool
from interformer.utils.config import load_config
from interformer.utils.device import check_device, check_launcher


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='InterFormer click test')
    parser.add_argument(
        'paths', nargs='+', metavar='CONFIG/CHECKPOINT',
        help='CONFIG CHECKPOINT, a lone CHECKPOINT (config next to it) or '
        'a lone CONFIG (random weights)')
    parser.add_argument(
        '--dataset', required=True,
        help=f'one of {sorted(CLICK_EVAL_DATASETS)} or a registered type')
    parser.add_argument('--data-root', required=True, help='dataset folder')
    parser.add_argument(
        '--layout', default='auto', help='auto|ritm|focuscut (folder sets)')
    parser.add_argument(
        '--protocol', default='ritm', choices=sorted(PROTOCOL_PRESETS))
    parser.add_argument('--max-clicks', type=int, default=20)
    parser.add_argument(
        '--iou-thrs', type=float, nargs='+', default=[0.85, 0.9])
    parser.add_argument(
        '--no-early-stop', action='store_true',
        help='run every click (RITM --iou-analysis) for an exact mIoU curve')
    parser.add_argument(
        '--tta', metavar='flip,zoom_in',
        help="RITM test-time augmentation for the ritm protocol, off by "
        "default: 'flip', 'zoom_in' (as RITM-family published NoC) or both")
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu', help="e.g. cpu, cuda")
    parser.add_argument(
        '--precision', choices=('fp32', 'bf16'),
        help='fp32 (default) or the opt-in bfloat16 path')
    parser.add_argument(
        '--path', choices=('fast', 'reference'),
        help='fast (default: fused, per-image K/V cache) or reference '
        '(the modules themselves)')
    parser.add_argument('--work-dir', help='output folder')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, key=value')
    parser.add_argument('--launcher', default='none', choices=LAUNCHERS)
    parser.add_argument('--no-progress', action='store_true')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_device(args.device)
    check_launcher(args.launcher, 'tools/dist_clicktest.sh')
    rank, _ = init_distributed(args.launcher)
    config, checkpoint = resolve_config_and_checkpoint(args.paths)
    cfg = load_config(config, args.cfg_options)
    overrides = dict(max_clicks=args.max_clicks, iou_thrs=args.iou_thrs)
    if args.no_early_stop:
        overrides['early_stop_iou'] = None
    overrides.update(tta_overrides(args.tta, args.protocol, args.dataset))
    protocol = get_protocol(args.protocol, **overrides)
    dataset = build_click_test_dataset(args.dataset, args.data_root,
                                       args.layout)
    predictor = build_predictor(cfg, checkpoint, local_device(args.device),
                                precision=args.precision, path=args.path)
    result = run_click_test(
        predictor, dataset, protocol, seed=args.seed,
        dataset_name=dataset_display_name(args.dataset),
        progress=not args.no_progress)
    if rank == 0:
        model_name = osp.splitext(osp.basename(checkpoint or config))[0]
        work_dir = args.work_dir or osp.join(
            'work_dirs', 'clicktest',
            osp.splitext(osp.basename(config))[0])
        meta = dict(config=config, checkpoint=checkpoint,
                    data_root=args.data_root)
        paths = save_report(result, work_dir, meta, model_name)
        print(results_table([result], model_name))
        print(timing_table([result]))
        print(f'results: {paths["json"]}\nplot:    {paths["plot"]}')
    finalize_distributed()
    return result


if __name__ == '__main__':
    run_tool(main)
