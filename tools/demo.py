"""Serve the interactive InterFormer demo page (the service's app).

Usage:
    python tools/demo.py                      # the quickstart's model
    python tools/demo.py CONFIG CHECKPOINT [--port 7860] [--host 0.0.0.0] \
        [--features STORE] [--client-decoding ONNX_DIR]

Open the printed URL: upload an image (or pick an example), left click for
the object, right click for the background. The same app also answers the
JSON API of tools/serve.py.

--features STORE: a feature store of this checkpoint
(tools/encode_images.py); an uploaded or example image whose file is in it
is not encoded again. --client-decoding ONNX_DIR: the export of this
checkpoint (tools/deploy/export_onnx.py --fp16; `npm ci` in
interformer/deploy/web once); the page downloads decoder.onnx once and each
image's decoder inputs once and decodes every click in the browser, the
server only encodes. A store or export of another model is refused.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from interformer.serving.cli import (  # noqa: E402
    add_deploy_arguments,
    add_model_arguments,
    add_server_arguments,
    build_app,
    check_paths,
)
from interformer.utils.cli import add_debug_flag, run_tool  # noqa: E402

DEFAULT_CONFIG = 'work_dirs/quickstart/interformer_quickstart.py'
DEFAULT_CHECKPOINT = 'work_dirs/quickstart/latest.pth'


def parse_args(argv=None, check: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Interactive segmentation demo in the browser')
    parser.add_argument('config', nargs='?', default=DEFAULT_CONFIG,
                        help=f'model config (default: {DEFAULT_CONFIG})')
    parser.add_argument('checkpoint', nargs='?', default=DEFAULT_CHECKPOINT,
                        help=f'checkpoint (default: {DEFAULT_CHECKPOINT})')
    add_server_arguments(parser, port=7860)
    add_model_arguments(parser)
    add_deploy_arguments(parser)
    parser.add_argument('--verbose', action='store_true',
                        help='log every request')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if check:
        defaults = (args.config == DEFAULT_CONFIG
                    and args.checkpoint == DEFAULT_CHECKPOINT)
        check_paths(parser, args, 'run `python tools/quickstart.py` first, '
                    'or pass CONFIG CHECKPOINT' if defaults else None)
    return args


def main(argv=None) -> None:
    args = parse_args(argv, check=True)
    from interformer.serving.launch import serve
    app = build_app(args, demo=True, cache_mb=512)
    mode = ' (client decoding)' if args.client_decoding else ''
    print(f'InterFormer demo{mode} on http://{args.host}:{args.port}/ '
          '(Ctrl+C to stop)', flush=True)
    serve(app, args.host, args.port,
          log_level='info' if args.verbose else 'warning')


if __name__ == '__main__':
    run_tool(main)
