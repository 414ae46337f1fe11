"""Maps side by side (paper 000 Fig. 2 / paper 003 Fig. 1 layout): the input, then each method's
map laid over it, on a grid of at most :data:`COLUMNS` panels a row (rows balanced: 6 panels as
2 x 3, not 4 + 2), under a title that names the model and the target class, with each kind of
map's colour rule stated under the grid."""

from __future__ import annotations

import math

import numpy as np

from smug.rendering.colormap import FADED
from smug.rendering.figure import class_phrase, map_panel, unit_word
from smug.rendering.sheet import Panel, Sheet, png

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


def comparison(panels: list[tuple[str, object]]) -> Sheet:
    """The input, then one map per ``(method, explanation)`` panel over it, each with its colour bar;
    the title names the model and the class, the bottom lines each colour rule in use."""
    first = panels[0][1]
    picture = np.asarray(first.picture)
    n = len(panels) + 1
    rows = math.ceil(n / COLUMNS)
    shown, rules = [Panel("input", picture)], []
    for method, e in panels:
        saliency, support, title = panel_of(method, e)
        panel = map_panel(title, picture, saliency, support)
        shown.append(panel)
        rules += [panel.scale.rule, *([FADED] if support is not None else [])]
    title = (f"smug compare on {first.model}: {class_phrase(first)}, {len(panels)} maps of this class, each scaled "
             "to its own maximum")
    return Sheet((title,), tuple(shown), tuple(rules), columns=math.ceil(n / rows))


def comparison_png(panels: list[tuple[str, object]]) -> bytes:
    """PNG of :func:`comparison`."""
    return png(comparison(panels))
