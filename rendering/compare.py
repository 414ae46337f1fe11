"""Maps as pictures for side-by-side comparisons (paper 000 Fig. 2 / paper 003 Fig. 1 layout)."""

from __future__ import annotations

import numpy as np



def map_picture(saliency: np.ndarray, sparse: bool = False) -> np.ndarray:
    """A map as a grey picture of its magnitude over [0, max] (the one rule of
    :mod:`smug.rendering.colormap`, for every method).  ``sparse`` (a mask's map): a non-zero
    score never rounds to 0, so the picture still tells kept blocks from dropped ones."""
    s = np.abs(np.asarray(saliency, dtype=np.float64))
    if s.ndim == 1:
        side = int(np.ceil(np.sqrt(s.size)))
        s = np.pad(s, (0, side * side - s.size)).reshape(side, side)
    grey = np.round(s / max(float(s.max()), 1e-300) * 255)
    if sparse:
        grey[(s > 0) & (grey < 1)] = 1
    return grey.astype(np.uint8)


def comparison_sheet(panels: list[tuple[str, object]], size: float = 3.2) -> bytes:
    """PNG: the input, then one map per ``(method, explanation)`` panel (``smug_base`` shows
    SMUG's base map), each with its colour bar under the one scaling rule of
    :mod:`smug.rendering.figure`; ``size`` inches per panel (100 dpi)."""
    import io

    from matplotlib.figure import Figure

    from smug.rendering.figure import DPI, scaled

    picture = np.asarray(panels[0][1].picture)
    fig = Figure(figsize=(size * (len(panels) + 1), size + 0.8), dpi=DPI, layout="constrained")
    axes = fig.subplots(1, len(panels) + 1)
    nearest = "nearest" if picture.shape[0] < 64 else "antialiased"
    axes[0].imshow(picture, interpolation=nearest)
    axes[0].set_title("input", fontsize=12)
    for ax, (method, e) in zip(axes[1:], panels):
        if method == "smug_base":
            saliency, title = e.base_saliency, f"smug_base ({int(e.base_mask.sum())} blocks)"
        elif method == "smug":
            saliency, title = e.saliency, f"smug ({e.objective} blocks)"
        else:
            saliency, title = e.saliency, method
        s, cmap, lo, hi = scaled(saliency)
        shown = ax.imshow(s, cmap=cmap, vmin=lo, vmax=hi, interpolation=nearest)
        ax.set_title(title, fontsize=12)
        fig.colorbar(shown, ax=ax, shrink=0.8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
