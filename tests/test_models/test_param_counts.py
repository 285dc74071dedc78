"""The real Light and Tiny configs have the official layout: state-dict keys,
shapes, dtypes and order, and trainable parameters per module (read from
the TSVs of the reference folder). Built on the meta device (no memory, no
forward)."""
import copy
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import interformer  # noqa: F401  (mmcv.ops shim + registration)

MODULES = ('backbone', 'neck', 'decode_head', 'auxiliary_head')
FOOTER = re.compile(r'^# trainable parameters per top-level module: (.*);')


def _read_tsv(path):
    rows, counts = [], None
    with open(path) as f:
        for line in f:
            line = line.rstrip('\n')
            match = FOOTER.match(line)
            if match:
                counts = {
                    k: int(v)
                    for k, v in (kv.split('=')
                                 for kv in match.group(1).split(', '))
                }
            elif line and not line.startswith('#'):
                key, shape, dtype = line.split('\t')
                dims = () if shape == 'scalar' else tuple(
                    int(d) for d in shape.split('x'))
                rows.append((key, dims, dtype))
    return rows, counts


@pytest.mark.parametrize('variant', ['light', 'tiny'])
def test_official_layout_and_parameter_counts(variant, repo_root,
                                              reference_dir):
    tsv = osp.join(reference_dir,
                   f'official_state_dict_keys_{variant}.tsv')
    if not osp.isfile(tsv):
        pytest.skip(f'{tsv} not found')
    rows, counts = _read_tsv(tsv)
    assert counts is not None and set(counts) == set(MODULES)

    init_default_scope('mmseg')
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs', '_base_', 'models',
                 f'interformer_{variant}.py'))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    with torch.device('meta'):
        model = MODELS.build(model_cfg)

    ours = [(k, tuple(v.shape), str(v.dtype).replace('torch.', ''))
            for k, v in model.state_dict().items()]
    assert [r[0] for r in ours] == [r[0] for r in rows]
    assert ours == rows
    for name in MODULES:
        params = getattr(model, name).parameters()
        assert sum(p.numel() for p in params if p.requires_grad) \
            == counts[name], name
