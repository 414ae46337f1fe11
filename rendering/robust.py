"""Pictures of a robust (abductive) explanation (issue 30): the set ``E`` over the input and, on
request, the counterexample that justifies one pixel of ``E`` for a subset-minimal answer (an
input in the epsilon-box of ``E`` without that pixel that the model does not classify as the
target: why the pixel cannot be left out).

Panels: input | ``E`` (outlined, the rest faded: every pixel outside may move by epsilon and the
class stays) | the counterexample's change ``v - x`` over the input (signed map, the justified
pixel ringed).  Colours follow :mod:`smug.rendering.colormap`; the drawing helpers are
:mod:`smug.rendering.figure`'s.
"""

from __future__ import annotations

import numpy as np

from smug.rendering.colormap import FADED
from smug.rendering.figure import DPI, FONT, bare, draw_map, figure_size, interpolation, outline, to_png, wrapped
from smug.rendering.pictures import kept_region

CHANGE_RULE = ("counterexample's change v - x (red-blue, centred at 0) over the input in grey: red = raised, "
               "blue = lowered, 0 = unchanged")


def draw_robust(fig, picture: np.ndarray, pixel_mask: np.ndarray, epsilon: float, title: str = "",
                change: np.ndarray | None = None, pixel: tuple[int, int] | None = None) -> None:
    """Draw the panels of the module docstring into ``fig``; ``change`` (H, W): the counterexample
    minus the input (per pixel, channels summed), for the pixel ``pixel`` (row, column) of ``E``."""
    picture = np.asarray(picture)
    mask = np.asarray(pixel_mask, bool)
    if mask.shape != picture.shape[:2]:
        raise ValueError(f"the mask's shape {mask.shape} is not the picture's {picture.shape[:2]}")
    if (change is None) != (pixel is None):
        raise ValueError("a counterexample is drawn for one pixel: give both change and pixel")
    if change is not None and np.shape(change) != mask.shape:
        raise ValueError(f"the change's shape {np.shape(change)} is not the picture's {mask.shape}")
    if pixel is not None and not mask[pixel]:
        raise ValueError(f"pixel {pixel} is not in E: only a pixel of E has a counterexample")
    axes = np.atleast_1d(fig.subplots(1, 2 if change is None else 3))
    for ax in axes:
        bare(ax)
    axes[0].imshow(picture, interpolation=interpolation(picture))
    axes[0].set_title("input", fontsize=FONT)
    axes[1].imshow(kept_region(picture, mask), interpolation=interpolation(picture))
    outline(axes[1], mask)
    axes[1].set_title(f"E: {int(mask.sum())} fixed pixels (red outline)", fontsize=FONT)
    rules = [f"{FADED}: may move by epsilon = {epsilon:g} and the class stays"]
    if change is not None:
        scale = draw_map(fig, axes[2], picture, np.asarray(change, np.float64), None)
        rules.append(CHANGE_RULE if scale.signed else scale.rule)
        r, c = pixel
        axes[2].scatter([c], [r], s=120, facecolors="none", edgecolors="black", linewidths=1.5)
        axes[2].set_title(f"why pixel ({r}, {c}) stays: a counterexample\n(its change v - x; the pixel ringed)",
                          fontsize=FONT)
    width = fig.get_size_inches()[0]
    if title:
        fig.suptitle(wrapped([title], width), fontsize=FONT)
    fig.supxlabel(wrapped(rules, width), fontsize=FONT)


def robust_figure(picture: np.ndarray, pixel_mask: np.ndarray, epsilon: float, title: str = "",
                  change: np.ndarray | None = None, pixel: tuple[int, int] | None = None) -> bytes:
    """PNG of :func:`draw_robust` (a bare matplotlib figure: no pyplot state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figure_size(2 if change is None else 3), dpi=DPI, layout="constrained")
    draw_robust(fig, picture, pixel_mask, epsilon, title, change, pixel)
    return to_png(fig)
