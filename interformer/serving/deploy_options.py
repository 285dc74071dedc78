"""The demo's deploy options: ``--features STORE`` and
``--client-decoding ONNX_DIR`` (issue 15, parts 3 and 4).

Both are tied to the loaded checkpoint by the weights sha256 (the identity
:func:`interformer.deploy.export.weights_sha256` writes into ``model.json``
and every feature file): a store or export of another model is refused at
start-up with one ``error:`` line (:class:`~interformer.utils.cli.UserError`).

With ``--client-decoding`` the demo serves the client-decoding page
(:mod:`interformer.deploy.client_routes`): the loaded PyTorch model only
encodes (on ``--device``), the browser decodes every click.
"""
import threading
from typing import Optional

import torch

from interformer.deploy.client_routes import build_client_router
from interformer.deploy.encode import TorchEncoder
from interformer.deploy.export import weights_sha256
from interformer.deploy.model_info import load_model_info
from interformer.deploy.store_lookup import StoreLookup
from interformer.models.deploy import deploy_suspended
from interformer.utils.cli import UserError

__all__ = ['DeployOptions']


class DeployOptions:
    """The checked ``--features`` / ``--client-decoding`` of one model.

    Args:
        model: the loaded segmentor (before the predictor deploys it).
        checkpoint: its file (named in the errors).
        features: a feature-store folder, or None.
        client_decoding: an ONNX export folder, or None.

    Raises:
        UserError: a store or export of another model, or a folder that is
            not one (named in the message).
    """

    def __init__(self, model: torch.nn.Module, checkpoint: str,
                 features: Optional[str] = None,
                 client_decoding: Optional[str] = None) -> None:
        self.model = model
        self.model_dir = client_decoding
        self.store: Optional[StoreLookup] = None
        if features is None and client_decoding is None:
            return
        weights = weights_sha256(model)
        try:
            if features is not None:
                self.store = StoreLookup(features, weights)
            if client_decoding is not None:
                info = load_model_info(client_decoding)
        except (FileNotFoundError, ValueError) as err:
            raise UserError(str(err)) from None
        if client_decoding is not None and \
                info['weights_sha256'] != weights:
            raise UserError(
                f'--client-decoding {client_decoding} is the export of '
                f'another model (weights sha256 '
                f'{info["weights_sha256"][:12]}..., checkpoint '
                f'{checkpoint}: {weights[:12]}...); export this checkpoint '
                f'with tools/deploy/export_onnx.py')

    def client_router(self, lock: threading.Lock, max_upload_mb: float,
                      max_pixels: int):
        """The client-decoding routes, encoding with the PyTorch model
        (its plain modules, as exported) under ``lock``."""
        encoder = TorchEncoder(self.model, store_dtype='float32')

        def encode(image):
            with deploy_suspended():
                return encoder.encode([image])[0]

        return build_client_router(self.model_dir, encode, self.store,
                                   max_upload_mb, max_pixels, lock)
