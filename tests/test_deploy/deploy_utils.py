"""Tiny Light / Tiny segmentors for the deploy tests (real structures, small
ViT: 48-d, 2 layers)."""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STRUCTURES = ('light', 'tiny')
#: Prepended to a subprocess script: any import of torch fails.
BLOCK_TORCH = """
import sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == 'torch' or name.startswith('torch.'):
            raise ImportError(f'torch is blocked ({name})')
        return None

sys.meta_path.insert(0, BlockTorch())
"""
TINY_BACKBONE = dict(embed_dims=48, num_layers=2, num_heads=2, init_cfg=None)


def tiny_config(structure: str) -> Config:
    """The official ``interformer_<structure>`` model config, tiny ViT,
    BN heads (no process group needed)."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'models',
                 f'interformer_{structure}.py'))
    cfg.model.backbone.update(TINY_BACKBONE)
    for head in ('decode_head', 'auxiliary_head'):
        cfg.model[head].norm_cfg = dict(type='BN', requires_grad=True)
    return cfg


def build_tiny(structure: str, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised (seeded) model in eval mode, with non-trivial
    BN statistics and click-embedding table."""
    init_default_scope('mmseg')
    torch.manual_seed(seed)
    model = revert_sync_batchnorm(MODELS.build(tiny_config(structure).model))
    model.init_weights()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
    return model.eval()


def random_ref_label(height: int, width: int, seed: int) -> torch.Tensor:
    """(1, 1, H, W) uint8 reference label with blobs of every code."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 5, (1, 1, height // 8, width // 8),
                           generator=generator, dtype=torch.uint8)
    return coarse.repeat_interleave(8, 2).repeat_interleave(8, 3)
