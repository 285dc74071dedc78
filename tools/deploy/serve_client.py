"""Serve the client-decoding page without torch: the server only encodes
(encoder.onnx), every click is decoded in the browser (onnxruntime-web in a
web worker).

Usage:
    (cd interformer/deploy/web && npm ci)          # once: onnxruntime-web
    python tools/deploy/export_onnx.py CONFIG CHECKPOINT work_dirs/onnx --fp16
    python tools/deploy/serve_client.py work_dirs/onnx [--port 7861] \
        [--host 127.0.0.1] [--features STORE] [--max-upload-mb 10] \
        [--max-pixels N] [--threads N]

Open the printed URL, choose an image, left click = object, right click =
background; the page shows each click's latency measured in the browser.
With ``--features STORE`` (tools/encode_images.py, same model) the images
of the store are answered from it without encoding. The demo serves the
same page with the PyTorch model as encoder:
``tools/demo.py CONFIG CHECKPOINT --client-decoding work_dirs/onnx``.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from interformer.utils.cli import add_debug_flag, run_tool  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model_dir', help='folder of export_onnx.py')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=7861)
    parser.add_argument('--features', metavar='STORE',
                        help='feature store of the same model '
                        '(tools/encode_images.py)')
    parser.add_argument('--max-upload-mb', type=float, default=10.0)
    parser.add_argument('--max-pixels', type=int, default=2048 * 2048)
    parser.add_argument('--threads', type=int, default=None,
                        help='onnxruntime threads of the encoder')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    from interformer.deploy.client_app import build_client_app
    from interformer.deploy.client_routes import ORT_DIR
    from interformer.serving.launch import serve
    app = build_client_app(args.model_dir, args.features,
                           args.max_upload_mb, args.max_pixels,
                           args.threads)
    if not osp.isdir(ORT_DIR):
        print('warning: onnxruntime-web is missing; run `npm ci` in '
              'interformer/deploy/web', file=sys.stderr)
    print(f'client decoding at http://{args.host}:{args.port}/ '
          '(Ctrl+C to stop)', flush=True)
    serve(app, args.host, args.port, log_level='warning')


if __name__ == '__main__':
    run_tool(main)
