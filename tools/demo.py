"""Serve the interactive InterFormer demo page.

Usage:
    python tools/demo.py                      # the quickstart's model
    python tools/demo.py CONFIG CHECKPOINT [--port 7860] [--host 0.0.0.0]

Open the printed URL: upload an image (or pick an example), left click for
the object, right click for the background.
"""
import argparse
import os.path as osp
import sys

DEFAULT_CONFIG = 'work_dirs/quickstart/interformer_quickstart.py'
DEFAULT_CHECKPOINT = 'work_dirs/quickstart/latest.pth'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Interactive segmentation demo in the browser')
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help=f'model config (default: {DEFAULT_CONFIG})')
    parser.add_argument('checkpoint', nargs='?', default=DEFAULT_CHECKPOINT,
                        help=f'checkpoint (default: {DEFAULT_CHECKPOINT})')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default: 127.0.0.1, '
                        'this machine only; 0.0.0.0 for all)')
    parser.add_argument('--port', type=int, default=7860)
    parser.add_argument('--max-upload-mb', type=float, default=10.0,
                        help='largest accepted upload in MB')
    parser.add_argument('--max-pixels', type=int, default=2048 * 2048,
                        help='largest accepted width * height')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--precision', choices=('fp32', 'bf16'),
                        default='fp32')
    parser.add_argument('--verbose', action='store_true',
                        help='log every request')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    using_defaults = (args.config == DEFAULT_CONFIG
                      and args.checkpoint == DEFAULT_CHECKPOINT)
    missing = [p for p in (args.config, args.checkpoint)
               if not osp.isfile(p)]
    if missing:
        hint = ('run `python tools/quickstart.py` first, or pass CONFIG '
                'CHECKPOINT' if using_defaults else
                'check the CONFIG and CHECKPOINT paths')
        sys.exit(f'demo: not found: {", ".join(missing)} ({hint})')

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from interformer.apis import InterFormerPredictor, init_model
    from interformer.demo import DemoServer

    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = init_model(cfg, args.checkpoint, device=args.device)

    def predictor_factory():
        return InterFormerPredictor(model, device=args.device,
                                    precision=args.precision)

    try:
        server = DemoServer(predictor_factory, host=args.host,
                            port=args.port,
                            max_upload_mb=args.max_upload_mb,
                            max_pixels=args.max_pixels)
    except OSError as err:
        sys.exit(f'demo: cannot listen on {args.host}:{args.port}: '
                 f'{err.strerror or err} (choose another --port)')
    server.verbose = args.verbose
    print(f'InterFormer demo on {server.url} (Ctrl+C to stop)', flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == '__main__':
    main()
