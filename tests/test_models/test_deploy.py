"""deploy_model on a whole segmentor: the fused routes equal the modules'
own ops in float32, subclasses and hooks keep the modules' own route."""
import logging
import os.path as osp

import pytest
import torch

from interformer.apis.inference import init_model
from interformer.models.decode_heads.uper_head import UPerHead
from interformer.models.deploy import deploy_model, revert_deploy
from interformer.models.necks.imsa import PoolingBlock
from interformer.models.utils import deploy_suspended
from interformer.models.utils.fused_ops import onednn_available

pytestmark = pytest.mark.skipif(
    not onednn_available(), reason='oneDNN CPU ops unavailable')

DEBUG_CFG = osp.join('configs', '_base_', 'models', 'interformer_debug.py')
TOL = 1e-4


def _model(repo_root):
    torch.manual_seed(0)
    model = init_model(osp.join(repo_root, DEBUG_CFG))
    with torch.no_grad():  # BN statistics and biases that matter
        for name, tensor in model.state_dict().items():
            if 'running_var' in name:
                tensor.uniform_(0.5, 1.5)
            elif tensor.is_floating_point() and tensor.dim() == 1:
                tensor.add_(torch.randn(tensor.shape) * 0.1)
    return model


def _decode(model, image, label):
    with torch.inference_mode():
        feats = model.extract_image_feats(image)
        kv = model.image_key_values(feats)
        return model.decode_clicks(feats, label, key_values=kv).float()


def _inputs():
    gen = torch.Generator().manual_seed(1)
    image = torch.randn(1, 3, 96, 128, generator=gen)
    label = torch.full((1, 1, 96, 128), 2, dtype=torch.uint8)
    label[..., 30:40, 50:60] = 4
    return image, label


def test_deployed_segmentor_equals_its_own_ops(repo_root):
    model = _model(repo_root)
    image, label = _inputs()
    expected = _decode(model, image, label)
    report = deploy_model(model, 'fp32')
    assert type(model.decode_head).__name__ == 'DeployableUPerHead'
    assert {'backbone', 'neck', 'decode_head'} <= set(report.deployed)
    assert not report.skipped and model.deploy_report is report
    out = _decode(model, image, label)
    torch.testing.assert_close(out, expected, atol=TOL, rtol=0)
    with deploy_suspended():
        assert torch.equal(_decode(model, image, label), expected)
    # two objects in one call: the modules' own route, same answer
    with torch.inference_mode():
        feats = model.extract_image_feats(image)
        outs = model.decode_neck(feats, label.repeat(1, 2, 1, 1))
        both = model.decode_head(list(outs))
    assert both.shape[0] == 2
    torch.testing.assert_close(both[1:], expected, atol=TOL, rtol=0)
    revert_deploy(model)
    assert not model.neck.deployed and model.deploy_report is None
    assert torch.equal(_decode(model, image, label), expected)


class _HalfBlock(PoolingBlock):

    def forward(self, x, kv=None, key_value=None):
        return super().forward(x, kv, key_value) * 0.5


class _ShiftedHead(UPerHead):

    def forward(self, inputs):
        return super().forward(inputs) + 1.0


def test_subclasses_keep_their_forward_with_one_log_line(repo_root, caplog):
    model = _model(repo_root)
    model.neck.stages[1].blocks[0].__class__ = _HalfBlock
    model.decode_head.__class__ = _ShiftedHead
    image, label = _inputs()
    expected = _decode(model, image, label)
    with caplog.at_level(logging.WARNING, 'interformer.deploy'):
        report = deploy_model(model, 'fp32')
    assert set(report.skipped) == {'neck.stages.1.blocks.0', 'decode_head'}
    assert 'overrides forward' in report.skipped['neck.stages.1.blocks.0']
    assert len(caplog.records) == 2
    assert 'neck' in report.deployed
    torch.testing.assert_close(
        _decode(model, image, label), expected, atol=TOL, rtol=0)


def test_a_hook_inside_a_deployed_module_runs_its_own_ops(repo_root):
    model = _model(repo_root)
    deploy_model(model, 'bf16')
    image, label = _inputs()
    seen = []
    block = model.neck.stages[0].blocks[0]
    handle = block.mlp[0].register_forward_hook(lambda *_: seen.append(1))
    try:
        _decode(model, image, label)
    finally:
        handle.remove()
    assert seen == [1]
    _decode(model, image, label)
    assert seen == [1]


def test_bad_precision_is_rejected(repo_root):
    with pytest.raises(ValueError, match='precision'):
        deploy_model(torch.nn.Linear(2, 2), 'fp16')
