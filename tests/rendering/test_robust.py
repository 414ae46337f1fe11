"""The robust explanation's picture: E over the input, and a left-out pixel's counterexample on request."""

from __future__ import annotations

import io

import numpy as np
import pytest

from smug.rendering.robust import robust_figure, robust_sheet


def _digit():
    r = np.random.default_rng(0)
    picture = np.repeat(r.integers(0, 256, (12, 12, 1)), 3, axis=2).astype(np.uint8)
    mask = np.zeros((12, 12), bool)
    mask[3:6, 4:7] = True
    return picture, mask


def test_panels_say_what_is_drawn():
    picture, mask = _digit()
    change = np.zeros((12, 12))
    change[~mask] = 0.05
    sheet = robust_sheet(picture, mask, 0.05, "mnist: 7", change, (4, 5))
    titles = [p.caption for p in sheet.panels]
    assert titles[0] == "input" and titles[1] == "E: 9 fixed pixels (red outline)"
    assert "pixel (4, 5)" in titles[2] and sheet.panels[2].ring == (4, 5)
    assert np.array_equal(sheet.panels[1].outline, mask)
    assert "epsilon = 0.05" in sheet.rules[0] and sheet.title == ("mnist: 7",)


def test_the_counterexample_panel_widens_the_png():
    from PIL import Image

    picture, mask = _digit()
    two = Image.open(io.BytesIO(robust_figure(picture, mask, 0.1)))
    three = Image.open(io.BytesIO(robust_figure(picture, mask, 0.1, change=np.ones((12, 12)), pixel=(3, 4))))
    assert three.size[0] > two.size[0] and three.size[1] >= two.size[1]


@pytest.mark.parametrize("kw, words", [(dict(change=np.ones((12, 12)), pixel=(0, 0)), "not in E"),
                                       (dict(change=np.ones((5, 5)), pixel=(3, 4)), "change's shape"),
                                       (dict(change=np.ones((12, 12))), "both")])
def test_bad_requests_are_refused(kw, words):
    picture, mask = _digit()
    with pytest.raises(ValueError, match=words):
        robust_figure(picture, mask, 0.1, **kw)
