"""The text page: a heading, a legend, every score printed, readable contrast; checked as Chromium lays it out."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from smug.pipeline.explanation import Explanation, MethodRow, TextParts
from smug.rendering.browser import chromium, screenshot, text_styles
from smug.rendering.colormap import contrast
from smug.rendering.text_html import GREEN, RED, render_page, text_color, word_color

WORDS = "the plot is a mess and the acting is wooden but the music is lovely".split()


def text_explanation(rating: float = 0.35, seed: int = 0) -> Explanation:
    """A text answer as the pipeline shapes it (the page only renders, so no model is needed)."""
    r = np.random.default_rng(seed)
    rows = []
    for method in ("smug", "smug_base", "text_ig", "text_sis"):
        scores = [float(v) for v in r.normal(0, 0.1, len(WORDS)) * (r.random(len(WORDS)) < 0.7)]
        rows.append(MethodRow(method, scores, [s != 0 for s in scores], {"sparsity": 0.4, "sufficiency": 0.1,
                                                                          "comprehensiveness": None}, 0.1))
    text = TextParts(" ".join(WORDS), WORDS, [4], False, rating, "negative" if rating < 0.5 else "positive", 0.2,
                     tuple(rows))
    return Explanation(model="text-cnn", input="text", method="smug", request={}, target=0, target_name="rating",
                       confidence=rating, status="optimal", objective=sum(rows[0].selected), lower_bound=3,
                       n_vars=len(WORDS), proof="", certificate={"valid": True},
                       masked_prediction={"keeps_class": True, "target_confidence": 0.2}, ig={}, encoding={},
                       timings={}, text=text)


def test_every_word_colour_reads_at_wcag_aa():
    for score in np.linspace(-1, 1, 81):
        a = min(1.0, abs(score))
        base = GREEN if score > 0 else RED
        background = [a * c + (1 - a) * 255 for c in base]
        fg = [int(text_color(score, 1.0)[i:i + 2], 16) for i in (1, 3, 5)]
        assert contrast(fg, background) >= 4.5, (score, fg, background)
    assert text_color(-1.0, 1.0) == "#ffffff" and text_color(0.05, 1.0) == "#000000"  # white on dark red only
    assert word_color(0.0, 1.0) == "transparent"


def test_page_has_heading_legend_and_every_score_in_print():
    es = [text_explanation(0.35), text_explanation(0.8, seed=1)]
    page = render_page(es)
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings[0] == "text-cnn: negative (rating 0.350) &middot; method smug &middot; status optimal"
    assert headings[1].startswith("text-cnn: positive (rating 0.800)")
    assert 'class="legend"' in page and "raises the rating" in page and "lowers the rating" in page
    assert "negative when the selected words alone score higher" in page  # what sufficiency's sign means
    assert page.count("Words the model does not know (out of its vocabulary") == 2 and "&ldquo;mess&rdquo;" in page
    assert page.count(' unk"') == 2 * 4  # the unknown word, underlined in every row
    printed = re.findall(r"<small>([^<]*)</small>", page)
    legend = 3
    scores = [s for e in es for r in e.text.rows for s in r.scores]
    assert len(printed) == legend + len(scores)
    assert [float(p) for p in printed[legend:]] == pytest.approx(scores, rel=0.06, abs=1e-12)  # 2 significant digits


def test_text_page_in_headless_chromium(tmp_path):
    if chromium() is None:
        pytest.skip("no chromium binary (CI installs Debian's chromium in .ci/run)")
    page = render_page([text_explanation(0.35), text_explanation(0.8, seed=1)])
    path = tmp_path / "explanation.html"
    path.write_text(page)
    styles = text_styles(page)
    assert min(t["size"] for t in styles) >= 12, [t for t in styles if t["size"] < 12][:3]
    low = [t for t in styles if contrast(t["color"], t["background"]) < 4.5]
    assert not low, low[:3]  # no dark text on dark red, anywhere
    words = [t for t in styles if t["cls"].startswith("w")]
    assert len(words) == 2 * 4 * len(WORDS) + 3  # every word of every row, and the legend's three
    assert sum(t["tag"] == "small" for t in styles) == len(words)  # each with its score in print
    assert any(t["tag"] == "h2" and "status optimal" in t["text"] for t in styles)
    img = np.asarray(Image.open(screenshot(path, tmp_path / "shot.png", 1280, 900)).convert("RGB")).astype(int)
    assert img.std() > 15  # not blank
    red = (img[..., 0] > 150) & (img[..., 1] < 60) & (img[..., 2] < 60)
    green = (img[..., 1] > 120) & (img[..., 0] < 60) & (img[..., 2] < 60)
    assert red.sum() > 500 and green.sum() > 500  # both colours drawn, strong ones included
