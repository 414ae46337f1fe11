"""PNG renderings of masks and saliency maps (paper 003 Sec. 3.4: non-zero scores
are scaled into [0.5, 1] for display)."""

from __future__ import annotations

import io

import numpy as np


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def display_scale(saliency: np.ndarray) -> np.ndarray:
    """Non-zero scores to [0.5, 1] by rank-free min-max; zeros stay 0."""
    s = np.asarray(saliency, dtype=np.float64)
    out = np.zeros_like(s)
    nz = s != 0
    if nz.any():
        lo, hi = s[nz].min(), s[nz].max()
        out[nz] = 0.5 + 0.5 * ((s[nz] - lo) / (hi - lo) if hi > lo else 1.0)
    return out


def mask_png(pixel_mask: np.ndarray) -> bytes:
    return _png((np.asarray(pixel_mask, dtype=bool) * 255).astype(np.uint8))


def saliency_png(saliency: np.ndarray) -> bytes:
    return _png((display_scale(saliency) * 255).astype(np.uint8))


def overlay_png(image: np.ndarray, saliency: np.ndarray) -> bytes:
    """The input dimmed outside the mask, with saliency in red on top."""
    img = np.asarray(image, dtype=np.float64)
    s = display_scale(saliency)[..., None]
    kept = (s > 0).astype(np.float64)
    red = np.array([255.0, 0.0, 0.0])
    out = img * (0.25 + 0.75 * kept)
    out = out * (1 - 0.5 * s) + red * 0.5 * s
    return _png(np.clip(out, 0, 255).astype(np.uint8))
