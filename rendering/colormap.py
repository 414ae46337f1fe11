"""The colour rules of every saliency map, in every picture and page, and the sentence that states
each on the picture: a map with both signs on a diverging colour map centred at 0 (``RdBu_r``), any
other map by its magnitude over [0, max] on a perceptually uniform one (``viridis``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from smug.rendering.colormap_tables import TABLES

COLORMAP = "viridis"  # magnitudes over [0, max]
DIVERGING = "RdBu_r"  # signed maps over [-max|.|, max|.|], white at 0
RULES = {  # what a reader needs to read a map drawn under each colour map
    COLORMAP: "magnitude map (viridis) over the input in grey: |score| from 0 (dark purple, faint) to the map's "
              "own maximum (yellow, strong)",
    DIVERGING: "signed map (red-blue, centred at 0) over the input in grey: red = evidence for the class, "
               "blue = against, 0 = the grey input shows",
}
FADED = "light grey: outside the mask"  # what kept_region does to the rest of the input


@dataclass(frozen=True)
class MapScale:
    """How one map is coloured: its colour map and the value range it spans."""

    cmap: str
    lo: float
    hi: float

    @property
    def signed(self) -> bool:
        return self.cmap == DIVERGING

    @property
    def rule(self) -> str:
        return RULES[self.cmap]

    @property
    def label(self) -> str:
        """The colour bar's label."""
        return "score (signed)" if self.signed else "|score|"

    def unit(self, values: np.ndarray) -> np.ndarray:
        """``values`` on [0, 1] of the colour map (0.5 is 0 on a signed scale)."""
        return np.clip((np.asarray(values, dtype=np.float64) - self.lo) / (self.hi - self.lo), 0.0, 1.0)

    def strength(self, values: np.ndarray) -> np.ndarray:
        """|value| relative to the scale's largest magnitude, in [0, 1] (how strongly a pixel is tinted)."""
        return np.clip(np.abs(np.asarray(values, dtype=np.float64)) / max(abs(self.lo), abs(self.hi)), 0.0, 1.0)


def map_scale(saliency: np.ndarray) -> MapScale:
    """The rule of the module docstring for one map (a flat map gets a range, never a division by zero)."""
    s = np.asarray(saliency, dtype=np.float64)
    if s.size and s.min() < 0 < s.max():
        bound = float(np.abs(s).max())
        return MapScale(DIVERGING, -bound, bound)
    return MapScale(COLORMAP, 0.0, max(float(np.abs(s).max()) if s.size else 0.0, 1e-12))


@functools.cache
def table(name: str) -> np.ndarray:
    """The colour map ``name`` as a (256, 3) uint8 table (:mod:`smug.rendering.colormap_tables`)."""
    return np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in "".join(TABLES[name]).split()], np.uint8)


def colorize(values: np.ndarray, name: str = COLORMAP) -> np.ndarray:
    """RGB uint8 (..., 3) of ``values`` in [0, 1] under the colour map ``name`` (entry ``floor(256 v)``,
    the last for 1, as matplotlib indexes its tables)."""
    lut = table(name)
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float64)), 0.0, 1.0)
    return lut[np.minimum((v * len(lut)).astype(np.intp), len(lut) - 1)]


def css_gradient(name: str = COLORMAP, stops: int = 9) -> str:
    """A CSS ``linear-gradient`` (left to right, 0 to 1) of the colour map, for an HTML colour bar."""
    rgb = colorize(np.linspace(0.0, 1.0, stops), name)
    return "linear-gradient(to right, " + ", ".join(f"rgb({r},{g},{b})" for r, g, b in rgb) + ")"


def contrast(color: list[float], background: list[float]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours (0-255): 1 (none) to 21 (black on white)."""
    def luminance(rgb: list[float]) -> float:
        lin = [(c / 255) / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    a, b = sorted((luminance(color), luminance(background)), reverse=True)
    return (a + 0.05) / (b + 0.05)
