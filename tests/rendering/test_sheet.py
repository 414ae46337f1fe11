"""The sheet renderer against plain computations: panel sizes, the red border of a mask, the colour
bar's colours, text drawn where the layout puts it, and bad panels refused."""

from __future__ import annotations

import numpy as np
import pytest

from smug.rendering.colormap import map_scale, table
from smug.rendering.sheet import BAR_PX, PANEL_PX, Panel, Sheet, border, panel_size, render, wrap


def picture(h: int = 28, w: int = 28) -> np.ndarray:
    return (np.random.default_rng(0).random((h, w, 3)) * 255).astype(np.uint8)


def test_panels_keep_the_aspect_at_the_panel_size():
    assert panel_size(picture(28, 28)) == (PANEL_PX, PANEL_PX)
    assert panel_size(picture(1, 16)) == (PANEL_PX, PANEL_PX // 16)
    assert panel_size(picture(224, 112)) == (PANEL_PX // 2, PANEL_PX)


def test_border_is_where_the_scaled_mask_changes():
    mask = np.zeros((4, 4), bool)
    mask[1:3, 1:3] = True
    edge = border(mask, (8, 8))  # each cell 2 x 2
    up = np.kron(mask, np.ones((2, 2), bool))
    ref = np.zeros((8, 8), bool)
    for y in range(8):
        for x in range(8):
            near = [(y + dy, x + dx) for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)) if 0 <= y + dy < 8 and 0 <= x + dx < 8]
            ref[y, x] = any(up[p] != up[y, x] for p in near)
    assert np.array_equal(edge, ref)
    assert not border(np.ones((4, 4), bool), (8, 8)).any() and not border(np.zeros((4, 4), bool), (8, 8)).any()


def test_render_draws_outline_bar_and_text():
    mask = np.zeros((28, 28), bool)
    mask[4:12, 4:12] = True
    scale = map_scale(np.arange(4.0))
    sheet = Sheet(("a title",), (Panel("input", picture(), outline=mask), Panel("map", picture(), scale=scale)),
                  ("a rule",))
    img = np.asarray(render(sheet)).astype(int)
    red = (img[..., 0] == 220) & (img[..., 1] == 20) & (img[..., 2] == 20)
    assert red.sum() >= 4 * 8 * (PANEL_PX // 28) * 2 * 0.9  # the square's four sides, two pixels thick
    rows = np.flatnonzero(red.any(axis=1))
    assert rows.max() - rows.min() + 1 == pytest.approx(8 * PANEL_PX / 28, abs=3)
    lut = table("viridis").astype(int)
    high, low = (np.argwhere(np.all(img == lut[i], axis=-1)) for i in (255, 0))
    assert len(high) >= BAR_PX and len(low) >= BAR_PX  # the bar runs from the map's top colour ...
    assert high[:, 0].max() < low[:, 0].min()  # ... at the top to its bottom colour
    top, bottom = img[:30], img[-30:]
    assert (top < 128).any() and (bottom < 128).any()  # the title and the rule are drawn


def test_wrap_keeps_every_word_within_the_width():
    text = "the masked input does NOT keep the decision " * 6
    lines = wrap(text.strip(), 300)
    assert len(lines) > 1 and " ".join(lines).split() == text.split()
    assert wrap("one\ntwo", 1000) == ["one", "two"]


@pytest.mark.parametrize("kw, words", [(dict(picture=np.zeros((4, 4), np.uint8)), "uint8"),
                                       (dict(outline=np.zeros((3, 3), bool)), "outline's shape"),
                                       (dict(ring=(9, 0)), "outside the picture")])
def test_bad_panels_are_refused(kw, words):
    with pytest.raises(ValueError, match=words):
        Panel(**{"caption": "x", "picture": np.zeros((4, 4, 3), np.uint8), **kw})
    with pytest.raises(ValueError, match="at least one panel"):
        Sheet(("t",), ())
