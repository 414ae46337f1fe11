"""The one answer type: JSON with a schema version, its inverse, files, notebook display."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from smug.pipeline import SCHEMA_VERSION, Explanation, explain


@pytest.fixture(scope="module")
def network():
    return explain(None, "mnist-mlp", method="whole-network", window=2, timeout=30)


def test_json_round_trip_and_version(network):
    e = network
    doc = json.loads(json.dumps(e.to_json()))
    assert doc["schema_version"] == SCHEMA_VERSION and doc["keeps_class"] is True
    assert doc["objective"] == len(doc["mask_blocks"]) == int(e.mask.sum())
    arrays = {k: getattr(e.image, k) for k in ("picture", "saliency", "mask", "pixel_mask", "base_mask",
                                               "base_saliency")}
    back = Explanation.from_json(doc, arrays)
    assert back.to_json() == doc and np.array_equal(back.mask, e.mask)
    with pytest.raises(ValueError, match="schema version"):
        Explanation.from_json({**doc, "schema_version": SCHEMA_VERSION + 1})


def test_files_and_notebook_display(network, tmp_path):
    names = {p.name for p in network.save(tmp_path)}
    assert names == {"result.json", "arrays.npz", "mask.png", "saliency.png", "overlay.png", "figure.png"}
    assert json.loads((tmp_path / "result.json").read_text()) == network.to_json()
    page = network._repr_html_()
    assert "data:image/png;base64," in page and "keeps the decision" in page
    assert "whole-network on mnist-mlp: optimal" in repr(network)


def test_a_baseline_map_has_no_mask_and_says_so():
    e = explain(None, "mnist-mlp", method="ig")  # an alias of integrated_gradients
    assert e.method == "integrated_gradients" and e.status == "map" and e.objective is None
    assert e.keeps_class is None and e.certificate["valid"] is None and e.saliency.shape == (28, 28)


def test_api_takes_a_model_proto_and_a_batch(tmp_path):
    from smug.models.zoo import load_model
    from smug.pipeline import ExplainRequest
    from smug.pipeline.inputs import load_image

    proto = load_model("mnist-mlp")[0].proto
    digit = load_image(ExplainRequest.build(None, "mnist-mlp")).x
    batch = np.stack([digit, digit[:, ::-1]])
    es = explain(batch, proto, method="whole-network", window=4, timeout=30, out_dir=tmp_path)
    assert len(es) == 2 and all(e.status == "optimal" and e.keeps_class for e in es)
    assert (tmp_path / "1" / "result.json").is_file()
    one = explain(digit[None], "mnist-mlp", method="whole-network", window=4, timeout=30)  # a batch of one
    assert one.objective == es[0].objective


def figure_pixels(e) -> np.ndarray:
    """The answer figure's RGB pixels."""
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(e.figure())).convert("RGB"))


def test_plot_is_the_answer_figure_as_a_matplotlib_figure(network):
    import matplotlib

    matplotlib.use("Agg")  # no display in tests; plot() itself never switches the backend
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from smug.rendering.figure import answer_sheet

    before = plt.get_fignums()
    fig = network.plot()
    try:
        assert isinstance(fig, Figure)
        assert plt.get_fignums() == before  # not a pyplot figure: a notebook shows it once, as the cell's value
        fig.canvas.draw()
        pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        assert np.array_equal(pixels, figure_pixels(network)) and pixels.std() > 20  # the figure, pixel for pixel
        sheet = answer_sheet(network)  # a whole-network answer: the input and its kept pixels (no score to map)
        assert [p.caption.split(":")[0] for p in sheet.panels] == ["input", "kept blocks"]
        assert np.array_equal(sheet.panels[0].picture, network.picture)
        assert f"class {network.target}" in sheet.words and "status optimal" in sheet.words
        assert "keeps the decision" in sheet.words
    finally:
        plt.close(fig)


def test_plot_refuses_a_text_answer():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rendering"))
    from test_text_html import text_explanation

    with pytest.raises(ValueError, match="plot\\(\\) draws image answers"):
        text_explanation().plot()
    shown = text_explanation()._repr_html_()
    assert "<body" not in shown and "<h2>" in shown and ".smug-text-page" in shown  # a scoped fragment


def test_notebook_display_in_headless_chromium(network, tmp_path):
    from PIL import Image

    from smug.rendering.browser import chromium, screenshot, text_styles

    if chromium() is None:
        pytest.skip("no chromium binary (CI installs Debian's chromium in .ci/run)")
    page = f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{network._repr_html_()}</body></html>"
    path = tmp_path / "cell.html"
    path.write_text(page)
    styles = {t["text"]: t for t in text_styles(page)}
    assert {"method", "status", "keeps the decision", "certificate valid"} <= set(styles)
    assert styles["optimal"]["size"] >= 12
    img = np.asarray(Image.open(screenshot(path, tmp_path / "cell.png", 1200, 700)).convert("RGB")).astype(int)
    h, w = figure_pixels(network).shape[:2]
    figure = img[:h, :w]  # the figure, at its own size
    red = (figure[..., 0] > 180) & (figure[..., 1] < 80) & (figure[..., 2] < 80)
    assert figure.std() > 20 and red.sum() > 200  # drawn, the kept pixels outlined in red


def test_a_saved_explanation_loads_back_whole(network, tmp_path):
    network.save(tmp_path / "e")
    for path in (tmp_path / "e", tmp_path / "e" / "result.json"):
        back = Explanation.load(path)
        assert back.to_json() == network.to_json()
        for name in ("picture", "saliency", "mask", "pixel_mask", "base_mask", "base_saliency"):
            mine, theirs = getattr(network.image, name), getattr(back.image, name)
            assert (mine is None and theirs is None) or np.array_equal(mine, theirs), name
    (tmp_path / "e" / "arrays.npz").unlink()
    with pytest.raises(ValueError, match="no arrays.npz beside it"):
        Explanation.load(tmp_path / "e")
    with pytest.raises(ValueError, match="no saved explanation"):
        Explanation.load(tmp_path / "nothing")


def test_plot_without_matplotlib_names_the_extra(network, monkeypatch):
    """matplotlib is only the ``plot`` extra now (every picture is drawn with Pillow): plot() says
    how to get it, and figure() still gives the picture."""
    for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import of a None entry raises ImportError
    with pytest.raises(ImportError, match=r"smug-explain\[plot\]"):
        network.plot()
    assert network.figure().startswith(b"\x89PNG")
