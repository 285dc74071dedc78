"""Encode images ahead of time into a feature store (one file per image).

Usage:
    python tools/encode_images.py CONFIG CHECKPOINT IMAGES... --out STORE \
        [--device cpu|cuda] [--batch N] [--fp16] [--store-dtype float16] \
        [--cfg-options KEY=VALUE ...]
    bash tools/dist_encode.sh CONFIG CHECKPOINT GPUS IMAGES... --out STORE

IMAGES are files or folders (their images, sorted). A rerun skips what is
done; an unreadable image is recorded as failed in STORE/manifest.json and
the exit code is 1 (with a summary) when any image failed.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config')
    parser.add_argument('checkpoint', help='checkpoint (.pth)')
    parser.add_argument('images', nargs='+', help='image files or folders')
    parser.add_argument('--out', required=True, help='feature store folder')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--batch', type=int, default=1,
                        help='images per encoder call (same canvas size)')
    parser.add_argument('--fp16', action='store_true',
                        help='autocast the encoder (float16 on CUDA, '
                        'bfloat16 on CPU)')
    parser.add_argument('--store-dtype', default='float16',
                        choices=('float16', 'float32'),
                        help='dtype of the stored features')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, KEY=VALUE')
    parser.add_argument('--launcher', default='none',
                        choices=('none', 'pytorch'),
                        help='pytorch: torchrun (tools/dist_encode.sh)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    args = parse_args(argv)
    for name, path in (('config', args.config),
                       ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            print(f'error: {name} {path} not found', file=sys.stderr)
            return 2
    from interformer.apis.inference import init_model
    from interformer.deploy.encode import (
        EncodeSummary,
        TorchEncoder,
        encode_to_store,
        expand_images,
        write_manifest,
    )
    from interformer.evaluation.distributed import (
        all_gather_objects,
        finalize_distributed,
        init_distributed,
        local_device,
    )
    rank, world_size = init_distributed(args.launcher)
    model = init_model(args.config, args.checkpoint,
                       local_device(args.device), cfg_options=args.cfg_options)
    encoder = TorchEncoder(model, args.store_dtype, args.fp16)
    summary = encode_to_store(encoder, expand_images(args.images), args.out,
                              args.batch, rank, world_size)
    gathered = all_gather_objects(summary)
    if rank == 0:
        total = EncodeSummary()
        for part in gathered:
            total.merge(part)
        manifest = write_manifest(args.out, total, encoder.weights_sha256,
                                  args.store_dtype)
        print(total.text())
        print(f'manifest: {manifest}')
        summary = total
    finalize_distributed()
    return 1 if summary.failed else 0


if __name__ == '__main__':
    sys.exit(main())
