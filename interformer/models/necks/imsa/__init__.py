"""I-MSA neck: pyramid-pooling attention blocks, PatchMerging, zoom-in."""
from .attention import PoolingAttention, pooled_grid_size
from .blocks import PoolingBlock
from .neck import IMSA, IMSAStage, RefineStage
from .patch_merging import PatchMerging
from .zoom_in import normalize_rois, roi_to_window, run_blocks_in_roi

__all__ = [
    'IMSA', 'IMSAStage', 'RefineStage', 'PoolingAttention', 'PoolingBlock',
    'PatchMerging', 'pooled_grid_size', 'normalize_rois', 'roi_to_window',
    'run_blocks_in_roi'
]
