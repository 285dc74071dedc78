"""Same-process A/B of the native ops against their PyTorch routes.

    python tools/benchmark_ops.py [--model light] [--size 352x512] \
        [--precisions fp32 bf16] [--threads 2] [--rounds 30] [--no-compile]

Records every native-op call of one click of the fast decoder (full-size
model, random weights), then times per op, interleaved and in shuffled
order per round: the native kernel (dispatcher check + custom op), the
PyTorch reference route eagerly and under ``torch.compile``; prints a
Markdown table of medians with the CPU model, AMX-BF16 yes/no and the
thread count. See ``interformer/ops/benchmark.py``.
"""
import argparse

import torch

from interformer.ops.benchmark import (
    ab_rows,
    format_ab_table,
    record_click_calls,
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default='light', choices=('light', 'tiny'))
    parser.add_argument('--size', default='352x512', help='HxW canvas')
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'],
                        choices=('fp32', 'bf16'))
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=30)
    parser.add_argument('--no-compile', action='store_true',
                        help='skip the torch.compile route')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        height, width = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        raise SystemExit(f'--size: expected HxW, got {args.size!r}')
    torch.set_num_threads(args.threads)
    calls = []
    for precision in args.precisions:
        calls += record_click_calls(args.model, precision, (height, width))
    rows = ab_rows(calls, rounds=args.rounds,
                   compile_reference=not args.no_compile)
    print(f'{args.model}, {height}x{width}')
    print(format_ab_table(rows, torch.get_num_threads()))


if __name__ == '__main__':
    main()
