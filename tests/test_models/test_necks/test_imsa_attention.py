"""Pooled-grid sizing, pyramid-pooling attention and the PoolingBlock."""
import pytest
import torch

from interformer.models.necks.imsa import (
    PatchMerging,
    PoolingAttention,
    PoolingBlock,
    pooled_grid_size,
)

RATIOS = ((12, 16, 20, 24), (6, 8, 10, 12), (3, 4, 5, 6), (1, 2, 3, 4))
TARGETS = (128, 64, 32, 16)


def _grids(stage, height, width):
    return [(pooled_grid_size(height, TARGETS[stage], r),
             pooled_grid_size(width, TARGETS[stage], r))
            for r in RATIOS[stage]]


def test_pooled_grid_matches_official_table():
    # 416x288 input: the grids listed for the parity fixture.
    assert _grids(0, 104, 72) == [(10, 10), (8, 8), (6, 7), (5, 5)]
    assert _grids(1, 52, 36) == [(10, 12), (9, 9), (6, 6), (5, 5)]
    assert _grids(2, 26, 18) == [(13, 9), (9, 9), (6, 6), (5, 6)]
    assert _grids(3, 13, 9) == [(13, 9), (6, 9), (6, 4), (4, 4)]
    # 512x512 input: 11, 8, 6, 5 in stages 0-2 and 16, 8, 5, 4 in stage 3.
    for stage, size in enumerate((128, 64, 32)):
        assert [g[0] for g in _grids(stage, size, size)] == [11, 8, 6, 5]
    assert [g[0] for g in _grids(3, 16, 16)] == [16, 8, 5, 4]


def test_pooled_grid_half_to_even_and_bad_args():
    # n=40, T=16, r=2: round(40 / 8) = 5 -> 8; r=1 never pools.
    assert pooled_grid_size(40, 16, 2) == 8
    assert pooled_grid_size(40, 16, 1) == 40
    # 20 / 8 = 2.5 rounds to 2 (banker's), so p = 10.
    assert pooled_grid_size(20, 16, 2) == 10
    # T / r < 1: the official rule would give an empty grid.
    assert pooled_grid_size(2, 2, 4) == 1
    with pytest.raises(ValueError, match='size'):
        pooled_grid_size(0, 16, 2)
    with pytest.raises(ValueError, match='ratio'):
        pooled_grid_size(10, 16, 0)


def test_attention_shapes_and_kv_split():
    torch.manual_seed(0)
    attn = PoolingAttention(16, 2, (1, 2, 3, 4), target_grid=(8., 8.))
    attn.eval()
    query = torch.randn(2, 16, 6, 5)
    kv_map = torch.randn(2, 16, 8, 7)
    key, value = attn.key_value(kv_map)
    grids = attn.pooled_sizes(8, 7)
    num_tokens = sum(h * w for h, w in grids)
    assert grids[0] == (8, 7)
    assert key.shape == value.shape == (2, 2, num_tokens, 8)
    out = attn(query, kv_map)
    assert out.shape == query.shape
    assert torch.equal(out, attn(query, (key, value)))
    # Keys depend on the key/value map only: other queries, same keys.
    assert not torch.allclose(out, attn(query.flip(-1), (key, value)))


def test_attention_bad_args():
    with pytest.raises(ValueError, match='divisible'):
        PoolingAttention(10, 3, (1, 2), target_grid=(8., 8.))
    with pytest.raises(ValueError, match='pool_ratios'):
        PoolingAttention(8, 1, (), target_grid=(8., 8.))
    attn = PoolingAttention(8, 1, (1, 2), target_grid=(8., 8.))
    with pytest.raises(ValueError, match='channels'):
        attn(torch.randn(1, 4, 5, 5), torch.randn(1, 8, 5, 5))
    with pytest.raises(ValueError, match='key_value'):
        attn.key_value(torch.randn(1, 8, 5))


def test_pooling_block_cross_and_self_attention():
    torch.manual_seed(0)
    block = PoolingBlock(8, 1, mlp_ratio=2, pool_ratios=(1, 2),
                         target_grid=(4., 4.)).eval()
    x = torch.randn(1, 8, 6, 6)
    image = torch.randn(1, 8, 3, 3)
    cross = block(x, image)
    assert cross.shape == x.shape
    assert torch.equal(cross, block(x, key_value=block.key_value(image)))
    assert torch.equal(block(x), block(x, x))
    assert not torch.allclose(cross, block(x))
    keys = set(block.state_dict())
    assert {'mlp.0.weight', 'mlp.2.weight', 'mlp.4.weight', 'norm_kv.bias',
            'attn.dconvs.1.weight', 'attn.key_value_proj.weight'} <= keys
    with pytest.raises(ValueError, match='PoolingBlock'):
        block(torch.randn(1, 4, 6, 6))


def test_patch_merging_channel_major_unfold():
    torch.manual_seed(0)
    merge = PatchMerging(2, 3).eval()
    x = torch.randn(1, 2, 5, 3)
    out = merge(x)
    assert out.shape == (1, 3, 3, 2)
    # Output pixel (1, 0) sees input rows 1..3, cols -1..1 (col -1 = pad).
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    window = padded[0, :, 2:5, 0:3].reshape(-1)  # c * 9 + ky * 3 + kx
    expected = merge.reduction(merge.norm(window))
    torch.testing.assert_close(out[0, :, 1, 0], expected)
    with pytest.raises(ValueError, match='PatchMerging'):
        merge(torch.randn(1, 3, 4, 4))
