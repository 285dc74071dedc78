"""Building the served app from command-line arguments (tools/serve.py and
tools/demo.py share this: the demo is the same app)."""
import argparse
import os.path as osp
from typing import Optional

__all__ = ['add_deploy_arguments', 'add_model_arguments',
           'add_server_arguments', 'build_app', 'check_paths']


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--precision', choices=('fp32', 'bf16'),
                        default='fp32')


def add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    """``--features STORE`` and ``--client-decoding ONNX_DIR``."""
    parser.add_argument(
        '--features', metavar='STORE',
        help='feature store of this checkpoint (tools/encode_images.py): '
        'images in it are not encoded again')
    parser.add_argument(
        '--client-decoding', metavar='ONNX_DIR',
        help='serve the page that decodes every click in the browser, '
        'with the export of this checkpoint (tools/deploy/export_onnx.py '
        '--fp16); the server only encodes')


def add_server_arguments(parser: argparse.ArgumentParser,
                         port: int) -> None:
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default: 127.0.0.1, '
                        'this machine only; 0.0.0.0 for all)')
    parser.add_argument('--port', type=int, default=port)
    parser.add_argument('--max-upload-mb', type=float, default=10.0,
                        help='largest accepted upload in MB')
    parser.add_argument('--max-pixels', type=int, default=2048 * 2048,
                        help='largest accepted width * height')


def check_paths(parser: argparse.ArgumentParser, args,
                hint: Optional[str] = None) -> None:
    """One ``error:`` line (exit 2) when CONFIG or CHECKPOINT is missing."""
    missing = [p for p in (args.config, args.checkpoint)
               if not osp.isfile(p)]
    if missing:
        parser.error(f'not found: {", ".join(missing)} '
                     f'({hint or "check the CONFIG and CHECKPOINT paths"})')
    for name, value in (('--max-upload-mb', args.max_upload_mb),
                        ('--max-pixels', args.max_pixels)):
        if value <= 0:
            parser.error(f'{name} must be > 0, got {value}')


def build_app(args, demo: bool = True, cache_mb: float = 2048):
    """Load the model once; the API engine and the demo sessions share it.

    ``args.features`` / ``args.client_decoding`` (see
    :mod:`.deploy_options`): stored features for the API engine and the
    demo sessions, or the client-decoding page instead of the server-side
    demo page.

    Returns:
        The ASGI app of :func:`interformer.serving.app.create_app`.
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from interformer.apis import InterFormerPredictor, init_model

    from .app import ServiceConfig, create_app
    from .engine import ClickEngine

    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = init_model(cfg, args.checkpoint, device=args.device)
    deploy = None
    if getattr(args, 'features', None) or \
            getattr(args, 'client_decoding', None):
        from .deploy_options import DeployOptions
        deploy = DeployOptions(model, args.checkpoint,
                               getattr(args, 'features', None),
                               getattr(args, 'client_decoding', None))

    def predictor_factory():
        return InterFormerPredictor(model, device=args.device,
                                    precision=args.precision)

    # the predictor deploys the model in place (fused per-click layers):
    # once here, before any request, so the engine runs the same modules
    predictor_factory()
    engine = ClickEngine(model, device=args.device,
                         precision=args.precision, cache_mb=cache_mb,
                         feature_store=None if deploy is None else
                         deploy.store)

    config = ServiceConfig(max_upload_mb=args.max_upload_mb,
                           max_pixels=args.max_pixels)
    if deploy is not None and deploy.model_dir is not None:
        router = deploy.client_router(engine.model_lock, args.max_upload_mb,
                                      args.max_pixels)
        return create_app(engine, config, None, routers=[router])
    store = None if deploy is None else deploy.store
    return create_app(engine, config, predictor_factory if demo else None,
                      feature_store=store)
