"""PNG renderings of masks and saliency maps at the input's size, under the one colour rule of
:mod:`smug.rendering.colormap` (the magnitude over [0, max], the same for every method)."""

from __future__ import annotations

import io

import numpy as np

from smug.rendering.colormap import colorize
from smug.rendering.figure import kept_region


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def magnitude(saliency: np.ndarray) -> np.ndarray:
    """|saliency| / max |saliency| in [0, 1] (all zeros for a zero map)."""
    s = np.abs(np.asarray(saliency, dtype=np.float64))
    top = float(s.max()) if s.size else 0.0
    return s / top if top > 0 else s


def mask_png(pixel_mask: np.ndarray) -> bytes:
    return _png((np.asarray(pixel_mask, dtype=bool) * 255).astype(np.uint8))


def saliency_png(saliency: np.ndarray) -> bytes:
    """The map on the colour map (RGB)."""
    return _png(colorize(magnitude(saliency)))


def overlay_png(image: np.ndarray, saliency: np.ndarray, alpha: float = 0.6) -> bytes:
    """The input with the map's colour laid over it in proportion to the magnitude (up to
    ``alpha``), so unimportant pixels stay as they are; where the map is exactly zero on part
    of the input (a mask's map) that part is faded to light grey, as in the answer figure."""
    img = np.asarray(image, dtype=np.float64)
    m = magnitude(saliency)
    support = m > 0
    base = kept_region(img, support).astype(np.float64) if support.any() and not support.all() else img
    weight = alpha * m[..., None]
    return _png(((1 - weight) * base + weight * colorize(m)).round().clip(0, 255).astype(np.uint8))
