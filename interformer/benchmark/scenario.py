"""What the benchmark runs on: full-size models and a real object mask.

The models are the real Light (ViT-B) and Tiny (ViT-L) architectures with
random weights (speed does not depend on the values). The image and the
object mask come from a GrabCut sample resized to the requested size, so
the robot user clicks on a real shape and the reference label changes as
it does in the click test; without the data a synthetic blob is used.
"""
import os.path as osp
from typing import Optional, Tuple

import cv2
import numpy as np
import torch

__all__ = [
    'MODEL_CONFIGS', 'build_benchmark_model', 'benchmark_sample',
    'default_data_root', 'repo_root'
]

#: Benchmark model name -> config under the repository root.
MODEL_CONFIGS = {
    'light': osp.join('configs', '_base_', 'models', 'interformer_light.py'),
    'tiny': osp.join('configs', '_base_', 'models', 'interformer_tiny.py'),
    'debug': osp.join('configs', '_base_', 'models', 'interformer_debug.py'),
}
IGNORE = -1


def repo_root() -> str:
    """The repository root (two levels above this package)."""
    return osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def default_data_root() -> Optional[str]:
    """GrabCut in ``<repo>/data/GrabCut`` or ``<repo>/../shared/data``."""
    root = repo_root()
    for candidate in (osp.join(root, 'data', 'GrabCut'),
                      osp.join(osp.dirname(root), 'shared', 'data',
                               'GrabCut')):
        if osp.isdir(osp.join(candidate, 'img')):
            return candidate
    return None


def build_benchmark_model(name: str, seed: int = 0) -> torch.nn.Module:
    """A segmentor with random weights for ``'light'``, ``'tiny'`` (full
    size) or ``'debug'`` (tests), in eval mode on the CPU."""
    if name not in MODEL_CONFIGS:
        raise ValueError(f'model must be one of {tuple(MODEL_CONFIGS)}, '
                         f'got {name!r}')
    from ..apis import init_model
    torch.manual_seed(seed)
    return init_model(osp.join(repo_root(), MODEL_CONFIGS[name]))


def _synthetic_sample(height: int,
                      width: int) -> Tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:height, :width]
    blob = (((yy - 0.55 * height) / (0.3 * height))**2 +
            ((xx - 0.45 * width) / (0.25 * width))**2) < 1
    blob |= (np.abs(yy - 0.3 * height) < 0.05 * height) & (
        np.abs(xx - 0.6 * width) < 0.3 * width)
    return image, blob.astype(np.int8)


def benchmark_sample(size: Tuple[int, int],
                     data_root: Optional[str] = None,
                     index: int = 0) -> Tuple[np.ndarray, np.ndarray, str]:
    """An (image, gt, name) of exactly ``size`` = (H, W).

    Args:
        size: (H, W) of the image.
        data_root: a GrabCut folder (``img/``, ``gt/``); None looks in the
            default places and falls back to a synthetic blob.
        index: which GrabCut sample.

    Returns:
        tuple: (H, W, 3) uint8 RGB image, (H, W) int8 gt (1 object, 0
        background, -1 ignore), a description.
    """
    height, width = int(size[0]), int(size[1])
    if height < 1 or width < 1:
        raise ValueError(f'image size must be positive, got {size}')
    root = data_root if data_root is not None else default_data_root()
    if root is None:
        image, gt = _synthetic_sample(height, width)
        return image, gt, 'synthetic'
    if not osp.isdir(root):
        raise FileNotFoundError(f'benchmark data root not found: {root}')
    from ..datasets.click_eval import GrabCutDataset
    dataset = GrabCutDataset(root)
    if not 0 <= index < len(dataset):
        raise ValueError(f'image index {index} out of range for '
                         f'{len(dataset)} GrabCut samples')
    sample = dataset.get_sample(index)
    image = cv2.resize(
        sample['image'], (width, height), interpolation=cv2.INTER_LINEAR)
    gt = cv2.resize(
        sample['gt'].astype(np.int16), (width, height),
        interpolation=cv2.INTER_NEAREST).astype(np.int8)
    return image, gt, f'GrabCut/{sample["name"]}'
