"""The deployed (fused) route of MAEWithSimpleFPN against its own ops."""
import logging

import pytest
import torch

from interformer.models.backbones import MAEWithSimpleFPN, RelPosMAELayer
from interformer.models.deploy import deploy_model
from interformer.models.utils import deploy_suspended
from interformer.models.utils.fused_ops import onednn_available

pytestmark = pytest.mark.skipif(
    not onednn_available(), reason='oneDNN CPU ops unavailable')

TOL = 1e-4
KWARGS = dict(
    img_size=64,
    embed_dims=64,
    num_layers=2,
    num_heads=2,
    out_dims=(8, 8, 8, 8),
    init_cfg=None)


def test_deployed_backbone_gathers_the_bias_of_grids_over_the_budget():
    torch.manual_seed(0)
    kwargs = KWARGS
    outputs = {}
    for budget in (100, 0.001):  # cached / gathered block by block
        torch.manual_seed(0)
        backbone = MAEWithSimpleFPN(**kwargs, bias_cache_mb=budget).eval()
        with torch.no_grad():
            for name, param in backbone.named_parameters():
                if 'relative_position_bias_table' in name:
                    param.normal_(0, 1)
        x = torch.randn(
            1, 3, 160, 224, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            ref = backbone(x)
            backbone.switch_to_deploy(torch.float32)
            fast = backbone(x)
            assert fast[0].is_contiguous(memory_format=torch.channels_last)
        assert (len(backbone.layers[0].attn.bias_cache) == 1) == (budget > 1)
        for a, b in zip(ref, fast):
            torch.testing.assert_close(b, a, atol=TOL, rtol=0)
        outputs[budget] = fast
    for a, b in zip(*outputs.values()):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0)


def test_bf16_route_stays_close_and_suspension_runs_the_modules():
    torch.manual_seed(0)
    backbone = MAEWithSimpleFPN(**KWARGS).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        ref = backbone(x)
        report = deploy_model(backbone, 'bf16')
        assert report.deployed == [''] and not report.skipped
        out = backbone(x)
        with deploy_suspended():
            plain = backbone(x)
    assert out[0].dtype == torch.bfloat16 and plain[0].dtype == torch.float32
    for a, b, c in zip(ref, out, plain):
        torch.testing.assert_close(c, a, atol=0, rtol=0)
        assert (b.float() - a).abs().max() < 0.1 * a.abs().max()


class _ScaledLayer(RelPosMAELayer):
    """A layer with its own forward (the fused route must not skip it)."""

    def forward(self, x, hw_shape):
        return super().forward(x, hw_shape) * 0.5


def test_a_layer_subclass_keeps_the_backbone_on_its_own_route(caplog):
    torch.manual_seed(0)
    backbone = MAEWithSimpleFPN(**KWARGS).eval()
    layer = backbone.layers[1]
    layer.__class__ = _ScaledLayer
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        ref = backbone(x)
        with caplog.at_level(logging.WARNING, 'interformer.deploy'):
            report = deploy_model(backbone, 'fp32')
        out = backbone(x)
    assert report.deployed == [] and 'layers.1' in report.skipped['']
    assert len([r for r in caplog.records if 'overrides' in r.message]) == 1
    for a, b in zip(ref, out):
        assert torch.equal(a, b)
