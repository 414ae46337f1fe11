"""smug compare's figure: a title with model and class, a grid, every map over the input with its
colour bar, smug and smug_base told apart by their kept blocks, one colour rule per kind stated."""

from __future__ import annotations

import numpy as np
from matplotlib.text import Text

from smug.rendering.colormap import RULES
from smug.rendering.compare import block_pixels, comparison_figure, map_picture


def test_grid_title_rules_and_kept_blocks(image_answer):
    smug = image_answer(objective=3)
    ig = image_answer(method="integrated_gradients", status="map", objective=None, signed=True, keeps=None)
    panels = [("smug", smug), ("smug_base", smug)] + [(m, ig) for m in ("integrated_gradients", "occlusion",
                                                                      "a", "b", "c", "d")]
    fig = comparison_figure(panels)
    words = " ".join(t.get_text().replace("\n", " ") for t in fig.findobj(Text) if t.get_text())
    assert "mnist-mlp: class 3 'three' (p = 0.973)" in words
    assert RULES["viridis"] in words and RULES["RdBu_r"] in words  # each kind's rule, once
    assert words.count(RULES["RdBu_r"]) == 1
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:3] == ["input", "smug: 3 of 49 blocks kept (optimal)", "smug_base: 49 of 49 blocks kept"]
    w, h = fig.get_size_inches()
    assert w / h < 2  # 9 panels on a grid, not one strip
    maps = [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images][1:3]
    assert not np.array_equal(maps[0], maps[1])  # smug and smug_base look different


def test_block_pixels_and_map_picture(image_answer):
    b = np.array([[True, False], [False, True]])
    assert np.array_equal(block_pixels(b, (4, 4)), np.kron(b, np.ones((2, 2), bool)))
    grey = map_picture(np.array([[0.0, 1e-9], [1.0, -2.0]]), sparse=True)
    assert grey.tolist() == [[0, 1], [128, 255]]
