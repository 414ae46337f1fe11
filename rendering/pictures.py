"""PNG renderings of masks and saliency maps at the input's size, and the one way a map is laid over
the input (:func:`overlay`), under the colour rules of :mod:`smug.rendering.colormap`."""

from __future__ import annotations

import io

import numpy as np

from smug.rendering.colormap import MapScale, colorize, map_scale

ALPHA = 0.85  # the map's opacity over the input where its magnitude is largest
FLOOR = 0.4  # a magnitude map's opacity at 0 (dark purple) where it is drawn: a peaked map's low values still show


def png(array: np.ndarray) -> bytes:
    """An RGB or grey uint8 array as PNG bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def kept_region(picture: np.ndarray, pixel_mask: np.ndarray | None) -> np.ndarray:
    """The input with everything outside the mask faded to a light grey (the region stays as it is)."""
    img = np.asarray(picture, dtype=np.float64)
    if pixel_mask is None:
        return img.astype(np.uint8)
    keep = np.asarray(pixel_mask, dtype=bool)[..., None]
    faded = 0.15 * img + 0.85 * 200.0
    return np.where(keep, img, faded).clip(0, 255).astype(np.uint8)


def magnitude(saliency: np.ndarray) -> np.ndarray:
    """|saliency| / max |saliency| in [0, 1] (all zeros for a zero map)."""
    s = np.abs(np.asarray(saliency, dtype=np.float64))
    top = float(s.max()) if s.size else 0.0
    return s / top if top > 0 else s


def muted(picture: np.ndarray) -> np.ndarray:
    """The input in mid-tone grey (its luminance on [40, 180]), so that a map's colours read on
    light and dark inputs alike and every colour on top belongs to the map."""
    img = np.asarray(picture, dtype=np.float64)
    lum = img @ np.array([0.299, 0.587, 0.114]) if img.ndim == 3 else img
    return np.repeat((40.0 + lum * (140.0 / 255.0))[..., None], 3, axis=-1)


def overlay(picture: np.ndarray, saliency: np.ndarray, support: np.ndarray | None = None,
            scale: MapScale | None = None) -> np.ndarray:
    """RGB uint8: the input in grey (:func:`muted`) with the map's colour (under ``scale``, by default
    the map's own rule) laid over it: a signed map in proportion to |value| (up to :data:`ALPHA`, so 0
    leaves the grey input), a magnitude map from :data:`FLOOR` at 0 to :data:`ALPHA` at its maximum.
    With ``support`` (a mask) the map is drawn on it only and the input outside it is faded to light grey."""
    scale = scale or map_scale(saliency)
    base = muted(picture)
    inside = np.ones(np.shape(saliency), bool) if support is None else np.asarray(support, dtype=bool)
    if not inside.all() and inside.any():
        base = np.where(inside[..., None], base, 215.0 + (base - 40.0) * (25.0 / 140.0))
    strength = scale.strength(saliency)
    weight = ALPHA * strength if scale.signed else FLOOR + (ALPHA - FLOOR) * strength
    weight = np.where(inside, weight, 0.0)[..., None]
    return ((1 - weight) * base + weight * colorize(scale.unit(saliency), scale.cmap)).round().clip(0, 255).astype(
        np.uint8)


def mask_png(pixel_mask: np.ndarray) -> bytes:
    return png((np.asarray(pixel_mask, dtype=bool) * 255).astype(np.uint8))


def saliency_png(saliency: np.ndarray) -> bytes:
    """The map's magnitude on the colour map (RGB)."""
    return png(colorize(magnitude(saliency)))


def overlay_png(image: np.ndarray, saliency: np.ndarray) -> bytes:
    """``overlay.png``: the map's magnitude over the input; where it is exactly zero on part of the
    input (a mask's map) that part is faded to light grey, as in the answer figure."""
    m = magnitude(saliency)
    return png(overlay(image, m, support=m > 0))
