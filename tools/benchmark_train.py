"""Where a training iteration goes: a phase breakdown of the training step.

    python tools/benchmark_train.py CONFIG [--device cpu|cuda] [--amp]
        [--amp-dtype bfloat16] [--iters 5] [--warmup 1] [--batch 4]
        [--cfg-options KEY=VALUE ...] [--json out.json] [--profile DIR]

Builds the config's model, optimiser, schedulers, hooks and training
pipeline through mmengine's Runner on generated COCO-panoptic data (the
quickstart generator at the config's crop size; ``--data-root`` reads a
real root instead), warms up, then times each iteration by phase with the
device synchronised: data, sim_device, sim_host, forward, backward,
optimizer, other. Prints ms per iteration and share, images/s, peak memory
and the FLOP floor at the device's measured matmul rate. See
``interformer/benchmark/train_step.py`` for the definitions. ``--sim-ab N``
times only the click simulation (host and device parts, numpy and device
routes) on N batches with a stand-in decoder
(``interformer/benchmark/train_sim.py``).

On a GPU machine, for example:

    python tools/benchmark_train.py \\
        configs/interformer_light_coco_lvis_320k.py \\
        --device cuda --amp --amp-dtype bfloat16 --json light_bf16.json
"""
import argparse
import os
import os.path as osp
import sys

# this checkout's package, also when another copy is installed
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='InterFormer training-step benchmark')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision as tools/train.py --amp')
    parser.add_argument('--amp-dtype', choices=['float16', 'bfloat16'],
                        default=None,
                        help='autocast dtype (CUDA default float16; CPU '
                        'bfloat16)')
    parser.add_argument('--iters', type=int, default=5,
                        help='timed iterations (instrumented, then as many '
                        'plain ones)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--batch', type=int, default=None,
                        help='images per iteration (default: the config)')
    parser.add_argument('--workers', type=int, default=None,
                        help='loader workers (default: the config)')
    parser.add_argument('--data-root', default=None,
                        help='COCO-panoptic root (default: generated data)')
    parser.add_argument('--num-images', type=int, default=32,
                        help='generated training images')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone')
    parser.add_argument('--cpu-time', action='store_true',
                        help='time with the main thread CPU time (CPU, '
                        '--threads 1, --workers 0): immune to other load')
    parser.add_argument('--no-flops', action='store_true',
                        help='skip the FLOP floor')
    parser.add_argument('--profile', metavar='DIR', default=None,
                        help='write a torch profiler trace of 2 iterations')
    parser.add_argument('--sim-ab', type=int, metavar='N', default=None,
                        help='only the click simulation of N loader batches '
                        'with a stand-in decoder, numpy vs device route')
    parser.add_argument('--json', metavar='PATH', default=None,
                        help='write the record as JSON')
    parser.add_argument('--work-dir', default=None,
                        help='keep the generated data and logs here')
    parser.add_argument('--cfg-options', nargs='+', default=None,
                        metavar='KEY=VALUE', help='override config entries')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == 'cpu':
        os.environ['CUDA_VISIBLE_DEVICES'] = ''  # before torch starts CUDA
    import torch
    from mmengine.config import DictAction

    import interformer  # noqa: F401  (registration)
    from interformer.benchmark.train_report import (
        format_train_table,
        run_train_benchmark,
        write_record,
    )
    from interformer.benchmark.train_step import TrainBenchSettings
    if args.device == 'cuda' and not torch.cuda.is_available():
        print(f'error: --device cuda but no CUDA device is available (torch '
              f'{torch.__version__})', file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    options = None
    if args.cfg_options:
        namespace = argparse.Namespace()
        DictAction(option_strings=[], dest='o')(None, namespace,
                                                args.cfg_options)
        options = namespace.o
    settings = TrainBenchSettings(
        config=args.config,
        device=args.device,
        iters=args.iters,
        warmup=args.warmup,
        batch=args.batch,
        amp=args.amp,
        amp_dtype=args.amp_dtype,
        cfg_options=options,
        data_root=args.data_root,
        num_images=args.num_images,
        workers=args.workers,
        profile_dir=args.profile,
        compile=args.compile,
        flops=not args.no_flops,
        cpu_time=args.cpu_time)
    if args.sim_ab:
        import json

        from interformer.benchmark.train_sim import simulation_ab
        result = simulation_ab(settings, args.sim_ab)
        print(json.dumps(result, indent=2))
        if args.json:
            write_record(result, args.json)
        return 0
    try:
        record = run_train_benchmark(settings, args.work_dir)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(format_train_table(record))
    if args.json:
        write_record(record, args.json)
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
