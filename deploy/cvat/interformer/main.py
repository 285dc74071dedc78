"""nuclio handler: InterFormer as a CVAT interactor (see docs/cvat.md).

``init_context`` builds the engine once per function replica from
``INTERFORMER_CONFIG`` / ``INTERFORMER_CHECKPOINT`` (``INTERFORMER_DEVICE``,
``INTERFORMER_CACHE_MB``); ``handler`` answers each CVAT request with
:func:`interformer.serving.cvat.handle_cvat_request`.
"""
import json
import os


def build_engine():
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from interformer.apis import init_model
    from interformer.serving.engine import ClickEngine
    cfg = Config.fromfile(os.environ['INTERFORMER_CONFIG'])
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    device = os.environ.get('INTERFORMER_DEVICE', 'cpu')
    model = init_model(cfg, os.environ.get('INTERFORMER_CHECKPOINT'),
                       device=device)
    return ClickEngine(model, device=device,
                       cache_mb=float(os.environ.get('INTERFORMER_CACHE_MB',
                                                     1024)))


def init_context(context):
    context.logger.info('Init context...  0%')
    context.user_data.engine = build_engine()
    context.logger.info('Init context...100%')


def handler(context, event):
    from interformer.serving.cvat import handle_cvat_request
    from interformer.serving.images import UploadError
    body = event.body
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):
            return _answer(context, {'error': 'the body is not JSON'}, 400)
    try:
        answer = handle_cvat_request(context.user_data.engine, body)
    except UploadError as err:
        return _answer(context, {'error': str(err)}, err.status)
    except ValueError as err:  # CvatRequestError, PromptError
        return _answer(context, {'error': str(err)}, 400)
    return _answer(context, answer, 200)


def _answer(context, body, status):
    return context.Response(body=json.dumps(body), headers={},
                            content_type='application/json',
                            status_code=status)
