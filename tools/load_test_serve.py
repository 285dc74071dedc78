"""Bounded load test of tools/serve.py on loopback (see README, Serving).

Usage:
    python tools/load_test_serve.py CONFIG [CHECKPOINT] [--annotators 4]
        [--images 8] [--clicks 5] [--cache-mb 256] [--image-size 320]
        [--data-root ../shared/data] [--time-limit 300] [--out report.json]

Without CHECKPOINT the config's model is served with random weights (the
latency does not depend on the weights). Prints p50/p99 per-click latency,
encodes per second, cache hit rate, memory against --cache-mb, errors.
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from interformer.serving.load_test import (  # noqa: E402
    find_images,
    format_report,
    run_load_test,
)
from interformer.utils.cli import add_debug_flag, run_tool  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', nargs='?', default=None)
    parser.add_argument('--annotators', type=int, default=4)
    parser.add_argument('--images', type=int, default=8)
    parser.add_argument('--clicks', type=int, default=5)
    parser.add_argument('--cache-mb', type=float, default=256)
    parser.add_argument('--image-size', type=int, default=320,
                        help='longer image side in pixels')
    parser.add_argument('--data-root',
                        default=osp.join(ROOT, '..', 'shared', 'data'))
    parser.add_argument('--time-limit', type=float, default=300,
                        help='stop issuing clicks after this many seconds')
    parser.add_argument('--precision', choices=('fp32', 'bf16'),
                        default='fp32')
    parser.add_argument('--out', help='write the report as JSON here')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    for name in ('config', 'checkpoint'):
        path = getattr(args, name)
        if path is not None and not osp.isfile(path):
            parser.error(f'{name} not found: {path}')
    if not osp.isdir(args.data_root):
        parser.error(f'--data-root is not a folder: {args.data_root}')
    if min(args.annotators, args.images, args.clicks) < 1:
        parser.error('--annotators, --images and --clicks must be >= 1')
    return args


def _random_checkpoint(config: str, folder: str) -> str:
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from interformer.apis import init_model
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    torch.manual_seed(0)
    path = osp.join(folder, 'random_init.pth')
    torch.save({'state_dict': init_model(cfg).state_dict()}, path)
    return path


def main(argv=None) -> None:
    args = parse_args(argv)
    images = find_images(args.data_root, args.images, args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint or _random_checkpoint(args.config, tmp)
        report = run_load_test(
            args.config, checkpoint, annotators=args.annotators,
            images=images, clicks=args.clicks, cache_mb=args.cache_mb,
            time_limit_s=args.time_limit, precision=args.precision,
            repo_root=ROOT)
    report.update(config=args.config, image_size=args.image_size,
                  omp_threads=os.environ.get('OMP_NUM_THREADS', 'default'),
                  random_weights=args.checkpoint is None)
    print(format_report(report))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(report, f, indent=1)


if __name__ == '__main__':
    run_tool(main)
