"""Procedural textures and shapes for the synthetic quickstart dataset.

Every function takes a :class:`numpy.random.Generator` and is deterministic
given its state. Textures return ``(H, W, 3)`` float32 RGB in [0, 255]; shapes
return ``(H, W)`` bool masks. Coordinates are (y, x) = (row, column).
"""
from typing import Callable, Dict, Tuple

import cv2
import numpy as np

__all__ = [
    'TEXTURES', 'SHAPES', 'SHAPE_WEIGHTS', 'random_color', 'random_texture',
    'random_shape'
]

Size = Tuple[int, int]


def random_color(rng: np.random.Generator) -> np.ndarray:
    """A random saturated-ish RGB colour, float32 (3,) in [0, 255]."""
    hsv = np.array([[[rng.integers(0, 180),
                      rng.integers(40, 256),
                      rng.integers(50, 256)]]], dtype=np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _jitter(color: np.ndarray, rng: np.random.Generator,
            amount: float) -> np.ndarray:
    return np.clip(color + rng.uniform(-amount, amount, 3), 0, 255)


def _blend(weight: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """Per-pixel mix of two colours; ``weight`` (H, W) in [0, 1]."""
    w = weight[..., None].astype(np.float32)
    return (1.0 - w) * c1 + w * c2


def _grid(size: Size, rng: np.random.Generator) -> Tuple[np.ndarray, ...]:
    """Rotated pixel coordinates (u, v) with a random angle."""
    h, w = size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, np.pi)
    u = xs * np.cos(theta) + ys * np.sin(theta)
    v = -xs * np.sin(theta) + ys * np.cos(theta)
    return u, v


def noise_texture(size: Size, rng: np.random.Generator, base: np.ndarray,
                  contrast: float = 1.0) -> np.ndarray:
    """Smooth value noise at a random scale between two nearby colours."""
    h, w = size
    cells = int(rng.integers(2, 12))
    coarse = rng.random((cells, cells)).astype(np.float32)
    weight = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    weight = np.clip(weight, 0, 1)
    return _blend(weight, base, _jitter(base, rng, 90 * contrast))


def stripe_texture(size: Size, rng: np.random.Generator, base: np.ndarray,
                   contrast: float = 1.0) -> np.ndarray:
    """Soft or hard stripes at a random angle and period."""
    u, _ = _grid(size, rng)
    period = rng.uniform(4, 24)
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    if rng.random() < 0.5:
        wave = (wave > 0.5).astype(np.float32)
    return _blend(wave, base, _jitter(base, rng, 120 * contrast))


def checker_texture(size: Size, rng: np.random.Generator, base: np.ndarray,
                    contrast: float = 1.0) -> np.ndarray:
    """A rotated checkerboard with a random cell size."""
    u, v = _grid(size, rng)
    cell = rng.uniform(3, 16)
    weight = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(
        np.float32)
    return _blend(weight, base, _jitter(base, rng, 120 * contrast))


def gradient_texture(size: Size, rng: np.random.Generator,
                     base: np.ndarray, contrast: float = 1.0) -> np.ndarray:
    """A linear gradient at a random angle plus fine grain."""
    u, _ = _grid(size, rng)
    weight = (u - u.min()) / max(float(np.ptp(u)), 1.0)
    out = _blend(weight, base, _jitter(base, rng, 140 * contrast))
    return out + rng.normal(0, 6, out.shape).astype(np.float32)


TEXTURES: Dict[str, Callable] = dict(
    noise=noise_texture,
    stripes=stripe_texture,
    checker=checker_texture,
    gradient=gradient_texture)


def random_texture(size: Size, rng: np.random.Generator, base: np.ndarray,
                   contrast: float = 1.0) -> np.ndarray:
    """A texture of a random kind around the colour ``base``.

    Args:
        size: (H, W).
        rng: generator.
        base: (3,) RGB base colour.
        contrast: scales how far the second colour of the texture may be
            from ``base`` (1 = strong patterns, ~0.3 = subtle ones).
    """
    names = sorted(TEXTURES)
    name = names[int(rng.integers(len(names)))]
    return np.clip(TEXTURES[name](size, rng, base, contrast), 0, 255)


# ------------------------------------------------------------------ shapes
def _centre_and_radius(size: Size, rng: np.random.Generator,
                       scale: float) -> Tuple[Tuple[int, int], float]:
    h, w = size
    radius = scale * min(h, w)
    cy = int(rng.uniform(0.1, 0.9) * h)
    cx = int(rng.uniform(0.1, 0.9) * w)
    return (cx, cy), radius


def ellipse_shape(size: Size, rng: np.random.Generator,
                  scale: float) -> np.ndarray:
    """A filled ellipse with a random aspect ratio and angle."""
    centre, r = _centre_and_radius(size, rng, scale)
    axes = (max(2, int(r)), max(2, int(r * rng.uniform(0.35, 1.0))))
    mask = np.zeros(size, np.uint8)
    cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1,
                -1)
    return mask.astype(bool)


def _star_polygon(centre: Tuple[int, int], r: float,
                  rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(3, 11))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = r * rng.uniform(0.45, 1.0, n)
    pts = np.stack([centre[0] + radii * np.cos(angles),
                    centre[1] + radii * np.sin(angles)], axis=1)
    return np.round(pts).astype(np.int32)


def polygon_shape(size: Size, rng: np.random.Generator,
                  scale: float) -> np.ndarray:
    """A random star-shaped polygon (convex or with concavities)."""
    centre, r = _centre_and_radius(size, rng, scale)
    mask = np.zeros(size, np.uint8)
    cv2.fillPoly(mask, [_star_polygon(centre, r, rng)], 1)
    return mask.astype(bool)


def ring_shape(size: Size, rng: np.random.Generator,
               scale: float) -> np.ndarray:
    """An elliptic ring or a polygon with a hole (the hole shows behind)."""
    centre, r = _centre_and_radius(size, rng, max(scale, 0.12))
    outer = np.zeros(size, np.uint8)
    ratio = rng.uniform(0.4, 1.0)
    angle = float(rng.uniform(0, 180))
    axes = (max(4, int(r)), max(4, int(r * ratio)))
    if rng.random() < 0.6:
        cv2.ellipse(outer, centre, axes, angle, 0, 360, 1, -1)
    else:
        cv2.fillPoly(outer, [_star_polygon(centre, r, rng)], 1)
    inner = np.zeros(size, np.uint8)
    k = rng.uniform(0.3, 0.6)
    cv2.ellipse(inner, centre, (max(1, int(axes[0] * k)),
                                max(1, int(axes[1] * k))), angle, 0, 360, 1,
                -1)
    return (outer > 0) & (inner == 0)


def bar_shape(size: Size, rng: np.random.Generator,
              scale: float) -> np.ndarray:
    """A thin straight or bent bar, 2-7 px wide."""
    centre, r = _centre_and_radius(size, rng, max(scale, 0.15) * 1.5)
    n = int(rng.integers(2, 5))
    pts = [np.array(centre, np.float32)]
    angle = rng.uniform(0, 2 * np.pi)
    for _ in range(n - 1):
        angle += rng.uniform(-1.0, 1.0)
        step = r * rng.uniform(0.5, 1.0)
        pts.append(pts[-1] + step * np.array([np.cos(angle), np.sin(angle)]))
    pts = np.round(np.stack(pts)).astype(np.int32)
    mask = np.zeros(size, np.uint8)
    cv2.polylines(mask, [pts], False, 1, int(rng.integers(2, 8)))
    return mask.astype(bool)


def limbs_shape(size: Size, rng: np.random.Generator,
                scale: float) -> np.ndarray:
    """A body (ellipse) with 2-5 thin limbs radiating from it."""
    centre, r = _centre_and_radius(size, rng, scale)
    mask = np.zeros(size, np.uint8)
    body = (max(3, int(r * 0.6)), max(3, int(r * rng.uniform(0.3, 0.6))))
    cv2.ellipse(mask, centre, body, float(rng.uniform(0, 180)), 0, 360, 1,
                -1)
    for _ in range(int(rng.integers(2, 6))):
        angle = rng.uniform(0, 2 * np.pi)
        length = r * rng.uniform(1.0, 2.0)
        end = (int(centre[0] + length * np.cos(angle)),
               int(centre[1] + length * np.sin(angle)))
        cv2.line(mask, centre, end, 1, int(rng.integers(2, 6)))
    return mask.astype(bool)


SHAPES: Dict[str, Callable] = dict(
    ellipse=ellipse_shape,
    polygon=polygon_shape,
    ring=ring_shape,
    bar=bar_shape,
    limbs=limbs_shape)


#: How often each kind is drawn: mostly compact objects, with a steady share
#: of holes and thin parts.
SHAPE_WEIGHTS: Dict[str, float] = dict(
    ellipse=0.3, polygon=0.3, ring=0.15, bar=0.1, limbs=0.15)


def random_shape(size: Size, rng: np.random.Generator,
                 scale: float) -> Tuple[str, np.ndarray]:
    """A shape of a random kind (:data:`SHAPE_WEIGHTS`); returns (kind name,
    (H, W) bool mask)."""
    names = list(SHAPES)
    weights = np.array([SHAPE_WEIGHTS[n] for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    return name, SHAPES[name](size, rng, scale)
