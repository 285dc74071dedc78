"""Speed of InterFormer on this machine: encoder per image, decoder per click.

    python tools/benchmark.py [--models light tiny] \
        [--sizes 352x512 480x640 768x1024] [--paths reference fast bf16 onnx] \
        [--clicks 50] [--threads 2] [--json results.json]

Full-size Light (ViT-B) and Tiny (ViT-L) with random weights, on a GrabCut
object resized to each size. For each path it reports the encoder seconds
per image, the per-click step a user waits for (median / p90 ms), the
robot user's own time per click, FLOPs per click, the achieved GFLOP/s and
its fraction of the machine's GEMM ceiling (torch.mm / oneDNN, measured in
the same run), speed-ups over ``reference`` and the largest logit
difference to it. See ``interformer/benchmark`` for the definitions.

    python tools/benchmark.py --quality CONFIG [CHECKPOINT] \
        [--data-root data/GrabCut] [--protocol official]

compares the opt-in bf16 path with fp32 on the GrabCut click test instead:
mean IoU between the bf16 and fp32 masks over all clicks (same reference
labels) and NoC@85/90 of both.
"""
import argparse

from interformer.benchmark.run import PATH_SETTINGS, BenchmarkSettings
from interformer.benchmark.scenario import MODEL_CONFIGS
from interformer.benchmark.suite import (
    DEFAULT_MODELS,
    DEFAULT_PATHS,
    DEFAULT_SIZES,
    format_markdown,
    format_table,
    parse_size,
    run_benchmark,
    write_json,
)
from interformer.utils.cli import UserError, add_debug_flag, run_tool


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='InterFormer CPU benchmark')
    parser.add_argument(
        '--models',
        nargs='+',
        default=list(DEFAULT_MODELS),
        choices=sorted(MODEL_CONFIGS))
    parser.add_argument(
        '--sizes',
        nargs='+',
        default=['x'.join(map(str, s)) for s in DEFAULT_SIZES],
        help='image sizes HxW')
    parser.add_argument(
        '--paths',
        nargs='+',
        default=list(DEFAULT_PATHS),
        choices=sorted(PATH_SETTINGS))
    parser.add_argument(
        '--precision',
        choices=('fp32', 'bf16'),
        help='shortcut: fp32 = reference + fast, bf16 = reference + bf16')
    parser.add_argument(
        '--clicks',
        type=int,
        default=50,
        help='timed clicks per path (after warm-up)')
    parser.add_argument('--warmup-clicks', type=int, default=5)
    parser.add_argument('--encoder-repeats', type=int, default=3)
    parser.add_argument(
        '--threads', type=int, help='torch threads (default: torch default)')
    parser.add_argument(
        '--data-root',
        help='GrabCut folder (default: '
        'data/GrabCut or ../shared/data/GrabCut)')
    parser.add_argument('--image-index', type=int, default=0)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the records to this file')
    parser.add_argument(
        '--markdown',
        action='store_true',
        help='also print the table in Markdown (README)')
    parser.add_argument(
        '--quality',
        nargs='+',
        metavar='CONFIG/CHECKPOINT',
        help='bf16-vs-fp32 quality on the GrabCut click test of this model')
    parser.add_argument(
        '--protocol',
        default='official',
        help='click-test protocol of --quality')
    parser.add_argument(
        '--num-instances',
        type=int,
        help='--quality: first N GrabCut objects only')
    parser.add_argument(
        '--num-seeds',
        type=int,
        default=1,
        help='--quality: click tests per precision (NoC averaged)')
    parser.add_argument(
        '--in-process',
        action='store_true',
        help='no subprocess per job (peak memory is then '
        'cumulative)')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def quality(args) -> None:
    """--quality: bf16 vs fp32 on the GrabCut click test."""
    import json

    import torch

    from interformer.apis import init_model
    from interformer.benchmark.precision import compare_precisions
    from interformer.benchmark.scenario import default_data_root
    from interformer.datasets.click_eval import GrabCutDataset
    from interformer.evaluation import resolve_config_and_checkpoint
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        config, checkpoint = resolve_config_and_checkpoint(args.quality)
    except ValueError as err:
        raise UserError(f'benchmark --quality: {err}') from None
    root = args.data_root or default_data_root()
    if root is None:
        raise UserError('benchmark --quality: GrabCut not found; pass '
                        '--data-root')
    dataset = GrabCutDataset(root)
    count = len(dataset) if args.num_instances is None else min(
        args.num_instances, len(dataset))
    model = init_model(config, checkpoint)
    result = compare_precisions(
        model,
        dataset,
        args.protocol,
        args.seed,
        range(count),
        num_seeds=args.num_seeds)
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)


def main(argv=None):
    args = parse_args(argv)
    if args.quality:
        quality(args)
        return
    try:
        sizes = [parse_size(s) for s in args.sizes]
    except ValueError as err:
        raise UserError(f'benchmark: --sizes: {err}') from None
    if args.clicks < 1 or args.encoder_repeats < 1:
        raise UserError('benchmark: --clicks and --encoder-repeats must be '
                        '>= 1')
    paths = args.paths
    if args.precision is not None:
        paths = ['reference', 'fast' if args.precision == 'fp32' else 'bf16']
    settings = BenchmarkSettings(
        clicks=args.clicks,
        warmup_clicks=args.warmup_clicks,
        encoder_repeats=args.encoder_repeats,
        threads=args.threads,
        seed=args.seed,
        data_root=args.data_root,
        image_index=args.image_index)

    def progress(records):
        print(format_table(records), flush=True)
        print(flush=True)

    records = run_benchmark(
        args.models,
        sizes,
        paths,
        settings,
        subprocess=not args.in_process,
        progress=progress)
    print('=== all jobs ===')
    print(format_table(records))
    if args.markdown:
        print()
        print(format_markdown(records))
    if args.json:
        write_json(records, args.json)
        print(f'records written to {args.json}')


if __name__ == '__main__':
    run_tool(main)
