"""Nearest/bicubic position resizing and the inference resize cache."""
import pytest
import torch
import torch.nn.functional as F

from interformer.models.backbones.flexible_pos import (
    ResizeCache,
    nearest_token_index,
    resize_pos_embed_bicubic,
    resize_pos_embed_nearest,
    resize_rel_pos_index,
    tensor_stamp,
)
from interformer.models.backbones.rel_pos_layers import RelPosMAEAttention

GRIDS = [(4, 4), (3, 5), (6, 2), (8, 6), (5, 7)]


def _official_bias_resize(bias, src_hw, dst_hw):
    """Re-statement of the official resize with F.interpolate calls.

    bias: (heads, 1 + h0*w0, 1 + h0*w0). The cls row/column are resized as
    maps, the token block first over the key grid, then the query grid.
    """
    heads = bias.shape[0]
    (h0, w0), (h, w) = src_hw, dst_hw

    def resize(maps):  # (..., h0, w0) -> (..., h, w)
        lead = maps.shape[:-2]
        out = F.interpolate(
            maps.reshape(1, -1, h0, w0), size=(h, w), mode='nearest')
        return out.reshape(*lead, h, w)

    cls_row = resize(bias[:, 0, 1:].reshape(heads, h0, w0)).flatten(1)
    cls_col = resize(bias[:, 1:, 0].reshape(heads, h0, w0)).flatten(1)
    block = bias[:, 1:, 1:].reshape(heads, h0 * w0, h0, w0)
    block = resize(block).flatten(2)  # key grid
    block = block.transpose(1, 2).reshape(heads, h * w, h0, w0)
    block = resize(block).flatten(2).transpose(1, 2)  # query grid
    out = bias.new_zeros(heads, 1 + h * w, 1 + h * w)
    out[:, 0, 0] = bias[:, 0, 0]
    out[:, 0, 1:] = cls_row
    out[:, 1:, 0] = cls_col
    out[:, 1:, 1:] = block
    return out


@pytest.mark.parametrize('dst_hw', GRIDS)
def test_nearest_token_index_matches_interpolate(dst_hw):
    src = torch.arange(16.).view(1, 1, 4, 4)
    expected = F.interpolate(src, size=dst_hw, mode='nearest').view(-1)
    index = nearest_token_index((4, 4), dst_hw)
    assert index.dtype == torch.long
    assert torch.equal(index.float(), expected)


@pytest.mark.parametrize('dst_hw', GRIDS)
def test_resize_pos_embed_nearest(dst_hw):
    pos = torch.randn(1, 1 + 16, 8)
    out = resize_pos_embed_nearest(pos, (4, 4), dst_hw)
    grid = pos[:, 1:].reshape(1, 4, 4, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=dst_hw, mode='nearest')
    assert out.shape == (1, 1 + dst_hw[0] * dst_hw[1], 8)
    assert torch.equal(out[:, 0], pos[:, 0])
    assert torch.equal(out[:, 1:], expected.flatten(2).transpose(1, 2))


@pytest.mark.parametrize('dst_hw', GRIDS)
def test_resize_rel_pos_index_matches_official_bias_resize(dst_hw):
    attn = RelPosMAEAttention(
        embed_dims=8, num_heads=2, window_size=(4, 4), bias=True)
    table = torch.randn_like(attn.relative_position_bias_table)
    index = attn.relative_position_index
    bias = table[index.view(-1)].view(17, 17, 2).permute(2, 0, 1)
    expected = _official_bias_resize(bias, (4, 4), dst_hw)
    new_index = resize_rel_pos_index(index, (4, 4), dst_hw)
    n = 1 + dst_hw[0] * dst_hw[1]
    got = table[new_index.view(-1)].view(n, n, 2).permute(2, 0, 1)
    assert torch.equal(got, expected)
    with torch.no_grad():
        attn.relative_position_bias_table.copy_(table)
    assert torch.equal(attn.rel_pos_bias(dst_hw), expected)


def test_same_grid_is_identity():
    pos = torch.randn(1, 10, 4)
    assert resize_pos_embed_nearest(pos, (3, 3), (3, 3)) is pos
    index = torch.arange(100).view(10, 10)
    assert resize_rel_pos_index(index, (3, 3), (3, 3)) is index


def test_resize_pos_embed_bicubic():
    pos = torch.randn(1, 1 + 14 * 14, 6)
    out = resize_pos_embed_bicubic(pos, (32, 32))
    grid = pos[:, 1:].reshape(1, 14, 14, 6).permute(0, 3, 1, 2)
    expected = F.interpolate(
        grid, size=(32, 32), mode='bicubic', align_corners=False)
    assert out.shape == (1, 1025, 6)
    assert torch.equal(out[:, :1], pos[:, :1])
    assert torch.allclose(out[:, 1:], expected.flatten(2).transpose(1, 2))
    assert resize_pos_embed_bicubic(pos, (14, 14)) is pos
    with pytest.raises(ValueError, match='not a 4x4 grid'):
        resize_pos_embed_bicubic(torch.randn(1, 1 + 15, 6), (8, 8), (4, 4))
    with pytest.raises(ValueError, match='pos_embed must have shape'):
        resize_pos_embed_bicubic(torch.randn(197, 6), (8, 8))


def test_resize_cache_lru_and_stamps():
    cache = ResizeCache(max_entries=2)
    param = torch.nn.Parameter(torch.zeros(3))
    stamp = tensor_stamp(param)
    cache.put('a', stamp, torch.ones(1))
    cache.put('b', stamp, torch.ones(2))
    assert cache.get('a', stamp) is not None  # 'a' becomes most recent
    cache.put('c', stamp, torch.ones(3))
    assert len(cache) == 2 and cache.get('b', stamp) is None
    with torch.no_grad():
        param.add_(1)
    new_stamp = tensor_stamp(param)
    assert new_stamp != stamp
    assert cache.get('a', new_stamp) is None and len(cache) == 1
    disabled = ResizeCache(max_entries=0)
    disabled.put('a', stamp, torch.ones(1))
    assert len(disabled) == 0
    with pytest.raises(ValueError, match='max_entries'):
        ResizeCache(-1)
    with torch.inference_mode():
        assert tensor_stamp(torch.zeros(2)) is None
