"""Per-click latency of decoding in the browser, and bytes per image.

Usage:
    python tools/deploy/benchmark_browser.py (--onnx-dir DIR | --model light)
        [--size 480x640] [--clicks 12] [--warmup 2] [--threads 1 2]
        [--json out.json] [--work-dir work_dirs/benchmark_browser]
        [--chromium PATH]

``--model light|tiny`` exports the full-size model with random weights
(``--fp16``) into ``--work-dir/<model>`` (reused when it is there);
``--onnx-dir`` takes an export of yours. The image and its object mask are
the benchmark's (a GrabCut sample resized to ``--size`` when the data is
there, a synthetic blob otherwise). ``--threads``: one run per WASM thread
count, one after the other in this process, with the ratio of the medians
to the first. Needs Chromium and ``npm ci`` in
interformer/deploy/web. Prints a Markdown table; ``--json`` writes the
figures.
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from interformer.utils.cli import (  # noqa: E402
    UserError,
    add_debug_flag,
    run_tool,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--onnx-dir', help='an export_onnx.py folder')
    source.add_argument('--model', choices=('light', 'tiny'),
                        help='export this full-size model (random weights)')
    parser.add_argument('--size', default='480x640', help='HxW')
    parser.add_argument('--clicks', type=int, default=12,
                        help='timed clicks (after --warmup)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, nargs='+', default=[1],
                        help='WASM threads of the decoder, one run each')
    parser.add_argument('--work-dir', default=osp.join(
        'work_dirs', 'benchmark_browser'))
    parser.add_argument('--chromium', default='/usr/bin/chromium')
    parser.add_argument('--json', help='write the figures here')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def _export(model_name: str, work_dir: str) -> str:
    from interformer.benchmark import build_benchmark_model
    from interformer.deploy.export import export_onnx
    folder = osp.join(work_dir, model_name)
    if not osp.isfile(osp.join(folder, 'model.json')):
        print(f'exporting {model_name} (random weights, fp16) to {folder}',
              flush=True)
        export_onnx(build_benchmark_model(model_name), folder, fp16=True)
    return folder


def main(argv=None) -> None:
    args = parse_args(argv)
    from interformer.benchmark import benchmark_sample, parse_size
    from interformer.benchmark.browser import (
        format_browser_table,
        run_browser_benchmark,
    )
    size = parse_size(args.size)
    if args.clicks < 1 or args.warmup < 0 or min(args.threads) < 1:
        raise UserError('--clicks and --threads must be >= 1, --warmup '
                        '>= 0')
    if not osp.isfile(args.chromium):
        raise UserError(f'--chromium {args.chromium} not found')
    model_dir = args.onnx_dir or _export(args.model, args.work_dir)
    image, gt, name = benchmark_sample(size)
    results = []
    for threads in args.threads:
        result = run_browser_benchmark(model_dir, image, gt, args.clicks,
                                       args.warmup, args.chromium,
                                       threads=threads)
        result.update(model=args.model or model_dir, sample=name)
        results.append(result)
        print(format_browser_table(
            result, f'{result["model"]} decoder in the browser, {name}, '
            f'{result["wasm_threads"]} WASM thread(s)'), flush=True)
    base = results[0]['click']['median_ms']
    for result in results[1:]:
        print(f'{result["wasm_threads"]} vs {results[0]["wasm_threads"]} '
              f'thread(s): {result["click"]["median_ms"] / base:.2f}x the '
              f'median per click')
    if args.json:
        folder = osp.dirname(osp.abspath(args.json))
        os.makedirs(folder, exist_ok=True)
        tmp = f'{args.json}.tmp'
        with open(tmp, 'w') as f:
            json.dump(results, f, indent=1)
        os.replace(tmp, args.json)
        print(f'json: {args.json}')


if __name__ == '__main__':
    run_tool(main)
