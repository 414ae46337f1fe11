"""One readable figure per image answer: the input, the kept region, the saliency map with a
colour bar, and the facts a reader needs (class, probability, status, whether the masked
input keeps the decision).

Every map is shown by the same rule (:mod:`smug.rendering.colormap`): its magnitude over
[0, max] on one perceptually uniform colour map; signed maps (a baseline's raw map) on a
diverging one centred at 0.  No rank squeezing: a flat map looks flat and a peaked one peaked.
"""

from __future__ import annotations

import io

import numpy as np

from smug.rendering.colormap import COLORMAP, DIVERGING

DPI = 100
SIZE = (11, 4.4)  # inches: three panels readable at 100 dpi


def scaled(saliency: np.ndarray) -> tuple[np.ndarray, str, float, float]:
    """(map, colour map, vmin, vmax) under the one rule of the module docstring."""
    s = np.asarray(saliency, dtype=np.float64)
    if s.min() < 0 < s.max():
        bound = float(np.abs(s).max())
        return s, DIVERGING, -bound, bound
    s = np.abs(s)
    return s, COLORMAP, 0.0, max(float(s.max()), 1e-12)


def kept_region(picture: np.ndarray, pixel_mask: np.ndarray | None) -> np.ndarray:
    """The input with everything outside the mask faded to a light grey (the region stays as it is)."""
    img = np.asarray(picture, dtype=np.float64)
    if pixel_mask is None:
        return img.astype(np.uint8)
    keep = np.asarray(pixel_mask, dtype=bool)[..., None]
    faded = 0.15 * img + 0.85 * 200.0
    return np.where(keep, img, faded).clip(0, 255).astype(np.uint8)


def draw_answer(fig, facts: dict, picture: np.ndarray, saliency: np.ndarray, pixel_mask: np.ndarray | None) -> None:
    """Draw the three panels (input, kept region, saliency with a colour bar) into the matplotlib
    figure ``fig`` under a title of ``facts`` (``title``, ``lines``)."""
    axes = fig.subplots(1, 3)
    nearest = "nearest" if picture.shape[0] < 64 else "antialiased"
    axes[0].imshow(picture, interpolation=nearest)
    axes[0].set_title("input", fontsize=12)
    axes[1].imshow(kept_region(picture, pixel_mask), interpolation=nearest)
    axes[1].set_title("kept region (mask, outlined)" if pixel_mask is not None else "no mask", fontsize=12)
    if pixel_mask is not None and np.any(pixel_mask) and not np.all(pixel_mask) and min(np.shape(pixel_mask)) > 1:
        # matplotlib outlines grids of at least 2 x 2: a flat (1, n) input's mask is shown unoutlined
        axes[1].contour(np.asarray(pixel_mask, dtype=float), levels=[0.5], colors="red", linewidths=1.5)
    s, cmap, lo, hi = scaled(saliency)
    shown = axes[2].imshow(s, cmap=cmap, vmin=lo, vmax=hi, interpolation=nearest)
    axes[2].set_title("saliency", fontsize=12)
    fig.colorbar(shown, ax=axes[2], shrink=0.85)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(facts["title"] + "\n" + "   ".join(facts.get("lines", ())), fontsize=12)


def answer_figure(facts: dict, picture: np.ndarray, saliency: np.ndarray, pixel_mask: np.ndarray | None) -> bytes:
    """PNG of :func:`draw_answer` (a bare matplotlib figure: no pyplot state, no backend switched)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    draw_answer(fig, facts, picture, saliency, pixel_mask)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
