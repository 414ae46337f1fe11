"""The answer figure: readable size, one scaling rule, the kept region left as it is."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from smug.rendering.figure import answer_figure, kept_region, scaled


def test_one_scaling_rule_for_every_map():
    s, cmap, lo, hi = scaled(np.array([[0.0, 2.0], [1.0, 4.0]]))
    assert cmap == "viridis" and (lo, hi) == (0.0, 4.0) and np.array_equal(s, [[0, 2], [1, 4]])
    s, cmap, lo, hi = scaled(np.array([[-3.0, 1.0]]))
    assert cmap == "RdBu_r" and (lo, hi) == (-3.0, 3.0)  # signed maps centred at 0
    assert scaled(np.zeros((2, 2)))[3] > 0  # a flat map is drawn flat, not divided by zero


def test_kept_region_keeps_the_pixels_and_fades_the_rest():
    picture = np.full((4, 4, 3), 10, np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    out = kept_region(picture, mask)
    assert np.array_equal(out[:2], picture[:2]) and (out[2:] > 150).all()


def test_figure_is_a_readable_png():
    picture = (np.random.default_rng(0).random((28, 28, 3)) * 255).astype(np.uint8)
    png = answer_figure({"title": "smug on m: class 3", "lines": ("status optimal",)}, picture,
                        np.random.default_rng(1).random((28, 28)), np.eye(28, dtype=bool))
    img = Image.open(io.BytesIO(png))
    assert img.size[0] >= 1000 and img.size[1] >= 400


def test_the_figure_of_a_flat_input_is_drawn():
    """Issue 31: a (n,) input's picture is one row; matplotlib cannot outline a (1, n) mask and raised."""
    picture = np.full((1, 12, 3), 90, np.uint8)
    mask = np.zeros((1, 12), bool)
    mask[0, 3:5] = True
    png = answer_figure({"title": "smug on flat", "lines": ()}, picture, np.arange(12.0)[None], mask)
    assert Image.open(io.BytesIO(png)).size[0] >= 1000
