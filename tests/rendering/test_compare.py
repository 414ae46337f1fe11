"""smug compare's figure: a title with model and class, a grid, every map over the input with its
colour bar, smug and smug_base told apart by their kept blocks, one colour rule per kind stated."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from smug.rendering.colormap import RULES
from smug.rendering.compare import block_pixels, comparison, comparison_png, map_picture


def test_grid_title_rules_and_kept_blocks(image_answer):
    smug = image_answer(objective=3)
    ig = image_answer(method="integrated_gradients", status="map", objective=None, signed=True, keeps=None)
    panels = [("smug", smug), ("smug_base", smug)] + [(m, ig) for m in ("integrated_gradients", "occlusion",
                                                                      "a", "b", "c", "d")]
    sheet = comparison(panels)
    words = sheet.words
    assert "mnist-mlp: class 3 'three' (p = 0.973)" in words
    assert RULES["viridis"] in words and RULES["RdBu_r"] in words  # each kind's rule, once
    assert words.count(RULES["RdBu_r"]) == 1
    titles = [p.caption for p in sheet.panels]
    assert titles[:3] == ["input", "smug: 3 of 49 blocks kept (optimal)", "smug_base: 49 of 49 blocks kept"]
    assert sheet.grid == (3, 3) and all(p.scale for p in sheet.panels[1:])  # 9 panels on a grid, each map its bar
    w, h = Image.open(io.BytesIO(comparison_png(panels))).size
    assert w / h < 2  # not one strip
    assert not np.array_equal(sheet.panels[1].picture, sheet.panels[2].picture)  # smug and smug_base differ


def test_block_pixels_and_map_picture(image_answer):
    b = np.array([[True, False], [False, True]])
    assert np.array_equal(block_pixels(b, (4, 4)), np.kron(b, np.ones((2, 2), bool)))
    grey = map_picture(np.array([[0.0, 1e-9], [1.0, -2.0]]), sparse=True)
    assert grey.tolist() == [[0, 1], [128, 255]]
