"""Once-per-image backbones: the MAE ViT with a SimpleFPN pyramid."""
from .flexible_pos import (
                           ResizeCache,
                           nearest_token_index,
                           resize_pos_embed_bicubic,
                           resize_pos_embed_nearest,
                           resize_rel_pos_index,
)
from .mae_simple_fpn import MAEWithSimpleFPN
from .rel_pos_layers import RelPosMAEAttention, RelPosMAELayer
from .simple_fpn import SimpleFPN

__all__ = [
    'MAEWithSimpleFPN', 'SimpleFPN', 'RelPosMAEAttention', 'RelPosMAELayer',
    'ResizeCache', 'nearest_token_index', 'resize_pos_embed_bicubic',
    'resize_pos_embed_nearest', 'resize_rel_pos_index'
]
