"""Pictures of a robust (abductive) explanation (issue 30): the set ``E`` over the input and, on
request, the counterexample that justifies one pixel of ``E`` for a subset-minimal answer (an
input in the epsilon-box of ``E`` without that pixel that the model does not classify as the
target: why the pixel cannot be left out).

Panels: input | ``E`` (outlined, the rest faded: every pixel outside may move by epsilon and the
class stays) | the counterexample's change ``v - x`` over the input (signed map, the justified
pixel ringed).  Colours follow :mod:`smug.rendering.colormap`; the drawing helpers are
:mod:`smug.rendering.sheet`'s.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from smug.rendering.colormap import FADED
from smug.rendering.figure import map_panel
from smug.rendering.pictures import kept_region
from smug.rendering.sheet import Panel, Sheet, png

CHANGE_RULE = ("counterexample's change v - x (red-blue, centred at 0) over the input in grey: red = raised, "
               "blue = lowered, 0 = unchanged")


def robust_sheet(picture: np.ndarray, pixel_mask: np.ndarray, epsilon: float, title: str = "",
                 change: np.ndarray | None = None, pixel: tuple[int, int] | None = None) -> Sheet:
    """The panels of the module docstring; ``change`` (H, W): the counterexample minus the input (per
    pixel, channels summed), for the pixel ``pixel`` (row, column) of ``E``."""
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
    panels = [Panel("input", picture),
              Panel(f"E: {int(mask.sum())} fixed pixels (red outline)", kept_region(picture, mask), outline=mask)]
    rules = [f"{FADED}: may move by epsilon = {epsilon:g} and the class stays"]
    if change is not None:
        r, c = pixel
        caption = f"why pixel ({r}, {c}) stays: a counterexample\n(its change v - x; the pixel ringed)"
        shown = dataclasses.replace(map_panel(caption, picture, np.asarray(change, np.float64), None), ring=(r, c))
        panels.append(shown)
        rules.append(CHANGE_RULE if shown.scale.signed else shown.scale.rule)
    return Sheet((title,) if title else (), tuple(panels), tuple(rules))


def robust_figure(picture: np.ndarray, pixel_mask: np.ndarray, epsilon: float, title: str = "",
                  change: np.ndarray | None = None, pixel: tuple[int, int] | None = None) -> bytes:
    """PNG of :func:`robust_sheet`."""
    return png(robust_sheet(picture, pixel_mask, epsilon, title, change, pixel))
