"""The raw pictures (saliency.png, overlay.png): the one colour rule, and an overlay that keeps the input visible."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from smug.rendering.colormap import DIVERGING, RULES, colorize, map_scale
from smug.rendering.pictures import ALPHA, FLOOR, kept_region, mask_png, overlay, overlay_png, saliency_png


def scale_rule(saliency):
    return map_scale(saliency).rule


def decode(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png))).astype(int)


def test_saliency_png_is_the_magnitude_on_the_colour_map():
    s = np.array([[0.0, -2.0], [1.0, 4.0]])
    assert np.array_equal(decode(saliency_png(s)), colorize(np.abs(s) / 4.0))  # signed: by magnitude
    assert np.array_equal(decode(saliency_png(np.zeros((2, 2)))), colorize(np.zeros((2, 2))))  # a zero map: flat


def test_overlay_lays_the_map_over_the_grey_input():
    picture = np.zeros((4, 4, 3), np.uint8)  # a black input: a red tint would vanish on a dark picture
    picture[:, 2:] = 255
    s = np.zeros((4, 4))
    s[0, 0], s[0, 2] = 1.0, 0.5
    out = decode(overlay_png(picture, s))
    top, half = colorize(np.array(1.0)).astype(float), colorize(np.array(0.5)).astype(float)
    assert np.abs(out[0, 0] - ((1 - ALPHA) * 40 + ALPHA * top)).max() <= 1  # black is mid-dark grey under the map
    w = FLOOR + (ALPHA - FLOOR) / 2
    assert np.abs(out[0, 2] - ((1 - w) * 180 + w * half)).max() <= 1
    assert (out[1:, :] > 210).all()  # outside the map's support: faded to light grey, never darkened
    dense = decode(overlay_png(picture, np.full((4, 4), 1e-6) + s))  # a dense map: nothing faded, low values faint
    low = colorize(np.array(0.0)).astype(float)
    assert np.abs(dense[3, 3] - ((1 - FLOOR) * 180 + FLOOR * low)).max() <= 1


def test_signed_overlay_is_diverging_and_clear_at_zero():
    picture = np.full((1, 3, 3), 255, np.uint8)
    out = overlay(picture, np.array([[-2.0, 0.0, 2.0]])).astype(int)
    assert out[0, 0, 2] > out[0, 0, 0] and out[0, 2, 0] > out[0, 2, 2]  # blue below 0, red above
    assert np.abs(out[0, 1] - 180).max() <= 1  # 0: the grey input as it is
    assert scale_rule(np.array([[-2.0, 2.0]])) == RULES[DIVERGING]


def test_mask_png_is_black_and_white():
    m = np.eye(3, dtype=bool)
    assert np.array_equal(decode(mask_png(m)), m * 255)


def test_kept_region_keeps_the_pixels_and_fades_the_rest():
    picture = np.full((4, 4, 3), 10, np.uint8)
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    out = kept_region(picture, mask)
    assert np.array_equal(out[:2], picture[:2]) and (out[2:] > 150).all()
