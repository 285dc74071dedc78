"""Serve the client-decoding page: the server only encodes, every click is
decoded in the browser (onnxruntime-web in a web worker).

Usage:
    (cd interformer/deploy/web && npm ci)          # once: onnxruntime-web
    python tools/deploy/export_onnx.py CONFIG CHECKPOINT work_dirs/onnx --fp16
    python tools/deploy/serve_client.py work_dirs/onnx [--port 7861] \
        [--host 127.0.0.1] [--max-upload-mb 10] [--threads N]

Open the printed URL, choose an image, left click = object, right click =
background; the page shows each click's latency measured in the browser.
"""
import argparse
import os.path as osp
import sys


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('model_dir', help='folder of export_onnx.py')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=7861)
    parser.add_argument('--max-upload-mb', type=float, default=10.0)
    parser.add_argument('--threads', type=int, default=None,
                        help='onnxruntime threads of the encoder')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))))
    args = parse_args(argv)
    from interformer.deploy.web_server import ORT_DIR, ClientDecodingServer
    try:
        server = ClientDecodingServer(args.model_dir, (args.host, args.port),
                                      args.max_upload_mb, args.threads)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    if not osp.isdir(ORT_DIR):
        print('warning: onnxruntime-web is missing; run `npm ci` in '
              'interformer/deploy/web', file=sys.stderr)
    print(f'client decoding at {server.url} (Ctrl+C to stop)')
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
