"""The one colour rule: the colour map's own colours, a CSS bar of them, WCAG contrast."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

from smug.rendering.colormap import COLORMAP, colorize, contrast, css_gradient, map_scale


def test_colorize_is_the_colour_map_and_clips():
    values = np.array([[0.0, 0.5], [1.0, 2.0]])
    ref = (np.asarray(matplotlib.colormaps[COLORMAP](np.clip(values, 0, 1)))[..., :3] * 255).round()
    out = colorize(values)
    assert out.dtype == np.uint8 and out.shape == (2, 2, 3) and np.array_equal(out, ref)
    assert np.array_equal(out[1, 0], out[1, 1])  # above 1 is drawn as 1


def test_css_gradient_runs_from_the_low_to_the_high_colour():
    css = css_gradient(stops=5)
    lo, hi = colorize(np.array([0.0, 1.0]))
    assert css.startswith("linear-gradient(to right, rgb(%d,%d,%d)" % tuple(lo))
    assert css.endswith("rgb(%d,%d,%d))" % tuple(hi)) and css.count("rgb(") == 5


@pytest.mark.parametrize("a,b,ratio", [((0, 0, 0), (255, 255, 255), 21.0), ((255, 255, 255), (255, 255, 255), 1.0),
                                       ((119, 119, 119), (255, 255, 255), 4.48)])  # #777 on white: 4.48 (WCAG)
def test_contrast_matches_wcag_values(a, b, ratio):
    assert contrast(a, b) == pytest.approx(ratio, abs=0.01) and contrast(b, a) == contrast(a, b)


def test_one_scale_rule_per_kind_of_map():
    scale = map_scale(np.array([[0.0, 2.0], [1.0, 4.0]]))
    assert scale.cmap == COLORMAP and (scale.lo, scale.hi) == (0.0, 4.0) and scale.label == "|score|"
    scale = map_scale(np.array([[-3.0, 1.0]]))
    assert scale.signed and (scale.lo, scale.hi) == (-3.0, 3.0)  # signed maps centred at 0
    assert scale.unit(np.array([-3.0, 0.0, 3.0])).tolist() == [0.0, 0.5, 1.0]
    assert scale.strength(np.array([-3.0, 1.5])).tolist() == [1.0, 0.5]
    assert map_scale(np.zeros((2, 2))).hi > 0  # a flat map is drawn flat, not divided by zero


@pytest.mark.parametrize("name", ["viridis", "RdBu_r"])
def test_tables_are_matplotlibs_own(name):
    """The shipped tables (no matplotlib at run time) are matplotlib's colour maps rounded to 8 bits."""
    values = np.concatenate([np.linspace(0, 1, 1001), np.random.default_rng(0).random(5000)])
    ref = (np.asarray(matplotlib.colormaps[name](values))[..., :3] * 255).round()
    assert np.array_equal(colorize(values, name), ref)
