"""The answer figure: a title a newcomer can read (model, class, method, status), what is proven,
the panels each kind of answer needs, and the colour rule stated on the figure."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from smug.rendering.colormap import RULES
from smug.rendering.figure import answer_figure, answer_facts, answer_sheet
from smug.rendering.sheet import Sheet


def drawn(e) -> tuple[Sheet, str, list[str]]:
    """The figure, every word on it, and its panels' captions."""
    sheet = answer_sheet(e)
    return sheet, sheet.words, [p.caption for p in sheet.panels]


def test_first_layer_answer_names_everything_and_states_its_colour_rule(image_answer):
    sheet, words, panels = drawn(image_answer())
    for needed in ("mnist-mlp", "class 3 'three'", "p = 0.973", "method smug", "status optimal", "kept 3 of 49 blocks",
                   "proven minimal", "does NOT keep the decision", RULES["viridis"], "light grey: outside the mask"):
        assert needed in words, needed
    assert panels == ["input", "kept blocks: 3 (red outline)", "saliency (Eq. 4) over the input"]
    assert [p.scale.label if p.scale else None for p in sheet.panels] == [None, None, "|score|"]  # one colour bar
    assert np.array_equal(sheet.panels[1].outline, image_answer().image.pixel_mask)  # the mask is outlined


def test_feasible_answer_shows_its_proven_lower_bound(image_answer):
    _, words, _ = drawn(image_answer(status="feasible", objective=5, lower_bound=2))
    assert "not proven minimal: proven lower bound 2" in words and "status feasible" in words


def test_whole_network_answer_does_not_repeat_its_mask_as_saliency(image_answer):
    e = image_answer(method="whole-network", window=1, objective=4, keeps=True)
    _, words, panels = drawn(e)
    assert panels == ["input", "kept pixels: 4 (red outline)"] and "saliency" not in words
    assert "kept 4 of 784 pixels" in words and "keeps the decision" in words


def test_baseline_shows_its_map_over_the_input_not_the_input_twice(image_answer):
    e = image_answer(method="integrated_gradients", status="map", objective=None, signed=True, keeps=None)
    sheet, words, panels = drawn(e)
    assert panels == ["input", "integrated_gradients map over the input"]
    assert "nothing is kept, solved or proven" in words and RULES["RdBu_r"] in words
    assert not np.array_equal(sheet.panels[0].picture, sheet.panels[1].picture)
    assert sheet.panels[1].scale.label == "score (signed)"


def test_facts_of_an_answer_without_mask(image_answer):
    facts = answer_facts(image_answer(status="unknown", objective=None, keeps=None))
    assert facts.panels == ("input",) and "no mask (status unknown)" in facts.lines[0]


def test_figure_is_a_readable_png(image_answer):
    img = Image.open(io.BytesIO(answer_figure(image_answer())))
    assert img.size[0] >= 1000 and img.size[1] >= 400
    pixels = np.asarray(img.convert("RGB")).astype(int)
    red = (pixels[..., 0] > 180) & (pixels[..., 1] < 80) & (pixels[..., 2] < 80)
    assert pixels.std() > 20 and red.sum() > 100  # drawn, the kept blocks outlined in red


def test_the_figure_of_a_flat_input_is_drawn(image_answer):
    """Issue 31: a (n,) input's picture is one row (matplotlib could not outline a (1, n) mask and raised)."""
    e = image_answer(side=4, window=1, objective=2)
    flat = type(e.image)(picture=e.image.picture[:1], saliency=e.image.saliency[:1], pixel_mask=e.image.pixel_mask[:1],
                         mask=e.image.mask[:1])
    png = answer_figure(type(e)(**{**{k: getattr(e, k) for k in e.__dataclass_fields__}, "image": flat}))
    assert Image.open(io.BytesIO(png)).size[0] >= 900


def test_a_method_without_k_and_gamma_is_still_described(image_answer):
    e = image_answer(method="robust")
    e = type(e)(**{**{k: getattr(e, k) for k in e.__dataclass_fields__}, "request": {"config": {"window": 4}}})
    assert "proven minimal for the question of method robust" in answer_facts(e).lines[0]
