"""The one colour rule for every saliency map, in every picture and page: magnitudes on a
perceptually uniform map (``viridis``), signed maps on a diverging one (``RdBu_r``)."""

from __future__ import annotations

import numpy as np

COLORMAP = "viridis"  # magnitudes over [0, max]
DIVERGING = "RdBu_r"  # signed maps over [-max|.|, max|.|], white at 0


def colorize(values: np.ndarray, name: str = COLORMAP) -> np.ndarray:
    """RGB uint8 (..., 3) of ``values`` in [0, 1] under the colour map ``name``."""
    import matplotlib

    rgba = np.asarray(matplotlib.colormaps[name](np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


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
