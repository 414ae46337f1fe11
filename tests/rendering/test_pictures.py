"""The raw pictures (saliency.png, overlay.png): the one colour rule, and an overlay that keeps the input visible."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from smug.rendering.colormap import colorize
from smug.rendering.pictures import mask_png, overlay_png, saliency_png


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png))).astype(int)


def test_saliency_png_is_the_magnitude_on_the_colour_map():
    s = np.array([[0.0, -2.0], [1.0, 4.0]])
    assert np.array_equal(decode(saliency_png(s)), colorize(np.abs(s) / 4.0))  # signed: by magnitude
    assert np.array_equal(decode(saliency_png(np.zeros((2, 2)))), colorize(np.zeros((2, 2))))  # a zero map: flat


def test_overlay_keeps_the_input_and_shows_the_map_on_dark_pixels():
    picture = np.zeros((4, 4, 3), np.uint8)  # a black input: a red tint would vanish here
    picture[:, 2:] = 200
    s = np.zeros((4, 4))
    s[0, 0], s[0, 2] = 1.0, 0.5
    out = decode(overlay_png(picture, s))
    top = colorize(np.array(1.0)).astype(float)
    assert np.abs(out[0, 0] - 0.6 * top).max() <= 1 and out[0, 0].max() > 100  # the map's colour on black
    assert np.abs(out[0, 2] - (0.7 * 200 + 0.3 * colorize(np.array(0.5)))).max() <= 1
    assert (out[1:, :] > 150).all()  # outside the map's support: faded to light grey, never darkened
    dense = decode(overlay_png(picture, np.full((4, 4), 1e-6) + s))  # a dense map: nothing faded
    assert np.abs(dense[3, 3] - picture[3, 3]).max() <= 1


def test_mask_png_is_black_and_white():
    m = np.eye(3, dtype=bool)
    assert np.array_equal(decode(mask_png(m)), m * 255)
