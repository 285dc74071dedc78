"""The relative-bias cache of MAEWithSimpleFPN respects its memory budget."""
import pytest
import torch

from interformer.models.backbones import MAEWithSimpleFPN

TINY = dict(
    img_size=64,
    embed_dims=32,
    num_layers=2,
    num_heads=2,
    out_dims=(8, 8, 8, 8),
    init_cfg=None)


def _bias_bytes(num_heads, hw):
    return num_heads * (1 + hw[0] * hw[1])**2 * 4


@pytest.mark.parametrize('budget_mb, cached', [(100, True), (0.01, False)])
def test_biases_over_budget_are_not_cached(budget_mb, cached):
    torch.manual_seed(0)
    model = MAEWithSimpleFPN(**TINY, bias_cache_mb=budget_mb).eval()
    with torch.no_grad():
        # 96x128 (grid 6x8, not the 4x4 build grid) needs a resized bias
        # of 2 * 49^2 * 4 = 19 kB per layer, 38 kB for both layers
        x = torch.randn(1, 3, 96, 128)
        out = model(x)
        assert _bias_bytes(2, (6, 8)) * 2 > 0.01 * 2**20
        for layer in model.layers:
            assert (len(layer.attn.bias_cache) == 1) == cached
        again = model(x)
    for a, b in zip(out, again):
        assert torch.equal(a, b)


def test_budget_must_not_be_negative():
    with pytest.raises(ValueError, match='bias_cache_mb'):
        MAEWithSimpleFPN(**TINY, bias_cache_mb=-1)


def test_resize_cache_evicts_to_stay_under_its_byte_budget():
    from interformer.models.backbones.flexible_pos import ResizeCache
    cache = ResizeCache(max_entries=4, max_bytes=1000)
    stamp = ('s', )
    cache.put('a', stamp, torch.zeros(100))  # 400 bytes
    cache.put('b', stamp, torch.zeros(100))
    assert len(cache) == 2 and cache.nbytes == 800
    cache.put('c', stamp, torch.zeros(100))  # 1200 > 1000: drop 'a'
    assert cache.get('a', stamp) is None
    assert cache.get('b', stamp) is not None and len(cache) == 2
    cache.put('big', stamp, torch.zeros(300))  # alone over the budget
    assert cache.get('big', stamp) is None and len(cache) == 2


def test_several_grids_are_cached_within_the_budget():
    torch.manual_seed(0)
    model = MAEWithSimpleFPN(**TINY, cache_size=4, bias_cache_mb=100).eval()
    with torch.no_grad():
        for size in ((96, 128), (128, 96), (96, 128)):
            model(torch.randn(1, 3, *size))
    assert len(model.layers[0].attn.bias_cache) == 2
