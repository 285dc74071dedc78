"""Serve InterFormer to annotation tools: JSON API, feature cache, Label
Studio ML backend, metrics and the demo page, on one ASGI app.

Usage:
    python tools/serve.py CONFIG CHECKPOINT [--host 127.0.0.1] [--port 8000]
        [--precision fp32|bf16] [--cache-mb 2048] [--workers 1]

Then: ``/docs`` (OpenAPI), ``/v1/images``, ``/v1/segment``, ``/metrics``,
``/label-studio`` (ML backend URL for Label Studio), ``/`` (demo page).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from interformer.serving.cli import (  # noqa: E402
    add_model_arguments,
    add_server_arguments,
    build_app,
    check_paths,
)
from interformer.utils.cli import add_debug_flag, run_tool  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='InterFormer annotation service (see README, Serving)')
    parser.add_argument('config', help='model config')
    parser.add_argument('checkpoint', help='checkpoint')
    add_server_arguments(parser, port=8000)
    add_model_arguments(parser)
    parser.add_argument(
        '--features', metavar='STORE',
        help='feature store of this checkpoint (tools/encode_images.py): '
        'uploaded images found in it are not encoded again')
    parser.add_argument('--cache-mb', type=float, default=2048,
                        help='feature cache bound in MiB (per worker)')
    parser.add_argument('--workers', type=int, default=1,
                        help='processes, each with its own model and cache')
    parser.add_argument('--no-demo', action='store_true',
                        help='do not serve the demo page at /')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    check_paths(parser, args)
    if args.cache_mb < 0:
        parser.error(f'--cache-mb must be >= 0, got {args.cache_mb}')
    if args.workers < 1:
        parser.error(f'--workers must be >= 1, got {args.workers}')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    from interformer.serving.launch import serve, serve_workers
    if args.workers > 1:
        serve_workers(args, args.workers)
        return
    app = build_app(args, demo=not args.no_demo, cache_mb=args.cache_mb)
    print(f'InterFormer service on http://{args.host}:{args.port}/ '
          '(/docs for the API; Ctrl+C to stop)', flush=True)
    serve(app, args.host, args.port)


if __name__ == '__main__':
    run_tool(main)
