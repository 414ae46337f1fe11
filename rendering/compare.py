"""Maps side by side (paper 000 Fig. 2 / paper 003 Fig. 1 layout): the input, then each method's
map laid over it, on a grid of at most :data:`COLUMNS` panels a row (rows balanced), under a title that names the
model and the target class, with each kind of map's colour rule stated under the grid."""

from __future__ import annotations

import math

import numpy as np

from smug.rendering.colormap import FADED
from smug.rendering.figure import (DPI, FONT, PANEL, bare, class_phrase, draw_map, figure_size, interpolation,
                                   rule_lines, to_png, unit_word, wrapped)

COLUMNS = 4


def map_picture(saliency: np.ndarray, sparse: bool = False) -> np.ndarray:
    """A map as a grey picture of its magnitude over [0, max] (what ``smug evaluate`` stores).
    ``sparse`` (a mask's map): a non-zero score never rounds to 0, so the picture still tells kept
    blocks from dropped ones."""
    s = np.abs(np.asarray(saliency, dtype=np.float64))
    if s.ndim == 1:
        side = int(np.ceil(np.sqrt(s.size)))
        s = np.pad(s, (0, side * side - s.size)).reshape(side, side)
    grey = np.round(s / max(float(s.max()), 1e-300) * 255)
    if sparse:
        grey[(s > 0) & (grey < 1)] = 1
    return grey.astype(np.uint8)


def block_pixels(blocks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A block grid's mask at the input's size (each block repeated over the pixels it covers)."""
    b = np.asarray(blocks, dtype=bool)
    ry, rx = -(-shape[0] // b.shape[0]), -(-shape[1] // b.shape[1])
    return np.repeat(np.repeat(b, ry, axis=0), rx, axis=1)[:shape[0], :shape[1]]


def panel_of(method: str, e) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(map, the mask it lives on or None, panel title) of ``method`` in the explanation ``e``
    (``smug_base`` is SMUG's base map: every block a kept neuron sees)."""
    if method == "smug_base":
        support = block_pixels(e.base_mask, np.shape(e.saliency))
        return e.base_saliency, support, f"smug_base: {int(np.sum(e.base_mask))} of {e.n_vars} blocks kept"
    if e.pixel_mask is not None:
        kept = "no mask" if e.objective is None else f"{e.objective} of {e.n_vars} {unit_word(e)} kept"
        return e.saliency, e.pixel_mask, f"{method}: {kept} ({e.status})"
    return e.saliency, None, method


def comparison_figure(panels: list[tuple[str, object]], size: float | None = None):
    """A matplotlib ``Figure``: the input, then one map per ``(method, explanation)`` panel over it,
    each with its colour bar; the title names the model and the class, the bottom line each colour
    rule in use.  ``size``: inches per panel (default :data:`smug.rendering.figure.PANEL`)."""
    from matplotlib.figure import Figure

    first = panels[0][1]
    picture = np.asarray(first.picture)
    n = len(panels) + 1
    rows = math.ceil(n / COLUMNS)
    cols = math.ceil(n / rows)  # balanced rows: 6 panels as 2 x 3, not 4 + 2
    width, height = figure_size(cols, rows, extra=1.6)
    if size is not None:
        width, height = width * size / PANEL, height * size / PANEL
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        bare(ax)
    for ax in axes[n:]:
        ax.set_axis_off()
    axes[0].imshow(picture, interpolation=interpolation(picture))
    axes[0].set_title("input", fontsize=FONT)
    rules = []
    for ax, (method, e) in zip(axes[1:], panels):
        saliency, support, title = panel_of(method, e)
        rules.append(draw_map(fig, ax, picture, saliency, support).rule)
        if support is not None:
            rules.append(FADED)
        ax.set_title(title, fontsize=FONT)
    fig.suptitle(wrapped([f"smug compare on {first.model}: {class_phrase(first)}, {len(panels)} maps of this "
                          "class, each scaled to its own maximum"], width), fontsize=FONT)
    fig.supxlabel(rule_lines(rules, width), fontsize=FONT)
    return fig


def comparison_sheet(panels: list[tuple[str, object]], size: float | None = None) -> bytes:
    """PNG of :func:`comparison_figure`."""
    return to_png(comparison_figure(panels, size))
