"""Export a checkpoint as ``encoder.onnx`` + ``decoder.onnx`` + ``model.json``.

Usage:
    python tools/deploy/export_onnx.py CONFIG CHECKPOINT OUT_DIR \
        [--opset 17] [--fp16] [--cfg-options KEY=VALUE ...]

The encoder maps a normalised, padded image (1, 3, H, W) (H, W any
multiples of 32) to the 4 pyramid maps and the cross-attention keys/values;
the decoder maps feat0 + keys/values + the reference label (1, 1, H, W)
uint8 to logits (1, 2, H/4, W/4). See interformer/deploy/graphs.py.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='model config')
    parser.add_argument('checkpoint', help='checkpoint (.pth)')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument('--opset', type=int, default=17,
                        help='ONNX opset (>= 14, default 17)')
    parser.add_argument('--fp16', action='store_true',
                        help='float16 encoder outputs / decoder feature '
                        'inputs (compute stays float32)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, KEY=VALUE')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    args = parse_args(argv)
    from interformer.apis.inference import init_model
    from interformer.deploy.export import export_onnx
    from interformer.deploy.graphs import ExportError
    for name, path in (('config', args.config),
                       ('checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            print(f'error: {name} {path} not found', file=sys.stderr)
            return 2
    model = init_model(args.config, args.checkpoint, 'cpu',
                       cfg_options=args.cfg_options)
    try:
        paths = export_onnx(model, args.out_dir, opset=args.opset,
                            fp16=args.fp16, checkpoint=args.checkpoint)
    except ExportError as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    for key, path in paths.items():
        print(f'{key:>10}: {path} ({osp.getsize(path) / 2**20:.1f} MiB)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
