"""smug.evaluation.report (``smug report``): a self-contained HTML page; every picture a decodable data URI; the
page opens in headless Chromium and the screenshot shows the table and image rows."""

from __future__ import annotations

import base64
import io
import math
import re

import numpy as np
import pytest

from smug.evaluation.report import (PAPERS, boxed_png, line_plot_svg, mean_cell, render, summary_tables, wilson_cell,
                                    write_report)
from smug.evaluation.runner import evaluate
from smug.evaluation.store import EvalConfig, EvalStore

METHODS = ["smug", "smug_base", "ig", "centerbox", "maxbox"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, make_digits):
    d = tmp_path_factory.mktemp("report")
    paths = make_digits(d, [(0, 0), (3, 1), (-2, 2)])
    db = d / "eval.sqlite"
    evaluate(paths, METHODS, db, EvalConfig(model="mnist-mlp", n_thresholds=30), progress=False)
    s = EvalStore(db)
    for p in paths:  # a small alignment experiment, as bench/alignment.py stores it
        s.put_experiment("alignment", str(p), {"pretrained/gbp/0": 0.1, "pretrained/gbp/2": 0.4,
                                               "random-gaussian/gbp/0": 0.2, "random-gaussian/gbp/2": 0.7})
        s.put_experiment("sanity", str(p), {"gradient/0": 1.0, "gradient/2": 0.25})
    s.close()
    return db


def test_summary_matches_the_rows(store_path):
    s = EvalStore(store_path)
    rows = s.results()
    t = summary_tables(s)
    s.close()
    assert t["methods"] == ["smug", "smug_base", "integrated_gradients", "centerbox", "maxbox"]
    lsc = sorted(r["lsc"] for r in rows if r["method"] == "smug")
    assert t["lsc"][0].startswith(f"{np.median(lsc):.2f} (")
    assert t["n_complete"] == 3 and t["sparsity"][4] == "100.0 (range 100.0-100.0, n=3)"  # MAXBOX keeps all
    wins = [float(w.split(" ")[0]) for w in t["win"]]
    assert sum(wins) >= 100.0 - 1e-9  # each image has at least one winner (ties count for all)
    for w, ww in zip(t["win"], t["win_wilson"]):  # the same share, with its Wilson interval
        k, n = map(int, ww.split("(")[1].split(")")[0].split("/"))
        assert n == 3 and float(ww.split(" ")[0]) == float(w.split(" ")[0]) == pytest.approx(100 * k / n, abs=0.05)


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Plain reference: the Wilson score interval, written out."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 3), (3, 3), (1, 3), (17, 50)])
def test_win_interval_is_wilsons_and_never_collapses(k, n):
    cell = wilson_cell(k, n)
    lo, hi = (float(v) for v in cell.split("[")[1].rstrip("]").split(", "))
    ref = wilson(k, n)
    assert (lo, hi) == (pytest.approx(100 * ref[0], abs=0.051), pytest.approx(100 * ref[1], abs=0.051))
    assert hi - lo > 10  # 3 images (or 50) never give a zero-width interval, unlike p +- z sqrt(p(1-p)/n)


def test_mean_interval_only_from_enough_values():
    assert mean_cell(np.array([100.0, 100.0, 100.0])) == "100.0 (range 100.0-100.0, n=3)"
    v = np.arange(20, dtype=float)
    assert mean_cell(v) == f"{v.mean():.1f} ± {1.96 * v.std(ddof=1) / math.sqrt(20):.1f}"


def test_every_image_is_a_decodable_data_uri(store_path):
    from PIL import Image

    s = EvalStore(store_path)
    page = render(s)
    s.close()
    srcs = re.findall(r"<img[^>]*src='([^']*)'", page)
    assert len(srcs) == 3 * (1 + len(METHODS))  # input + one map per method, per image
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        img.load()
        assert img.size == (160, 160)
    assert "<svg" in page and "polyline" in page  # the alignment plot
    assert "Parameter randomisation" in page and "<td>0.250</td>" in page  # the sanity-check table
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    assert "paper 0" not in page and all(title in page for title in PAPERS.values())  # papers by title
    assert "{&quot;" not in page and "<td>mnist-mlp</td>" in page  # settings as a table, not raw JSON
    assert "linear-gradient(" in page  # the colour bar
    caps = re.findall(r"<div class='cap'>([^<]*)</div><img alt='input", page)
    assert len(caps) == 3 and all(re.fullmatch(r".*, p = \d\.\d\d", c) for c in caps), caps  # labelled: p = ...
    assert "the model's probability p of that class" in page  # and said what p is


def test_every_method_is_drawn_on_the_one_colour_map(store_path):
    from PIL import Image

    from smug.rendering.colormap import colorize

    s = EvalStore(store_path)
    rows = [r for r in s.results() if r["method"] in ("smug", "integrated_gradients")]
    s.close()
    ramp = colorize(np.arange(256) / 255.0).astype(int)
    for r in rows:
        grey = np.asarray(Image.open(io.BytesIO(r["map_png"])).convert("L"))
        rgb = np.asarray(Image.open(io.BytesIO(boxed_png(r["map_png"], None, size=grey.shape[0]))), dtype=int)
        assert np.array_equal(rgb, ramp[grey])  # pixel by pixel: the colour map's value of the stored magnitude
        assert grey.max() == 255  # scaled by its own maximum, SMUG's sparse map included


def test_plot_and_missing_store(tmp_path):
    assert line_plot_svg({}, "t", "x", "y") == ""
    svg = line_plot_svg({"a": [(0, 0.1), (1, 0.5)], "random b": [(0, 0.2), (1, float("nan"))]}, "t", "x", "y")
    assert svg.count("<polyline") == 2 and "stroke-dasharray" in svg
    with pytest.raises(ValueError, match="no evaluation store"):
        write_report(tmp_path / "none.sqlite", tmp_path / "r.html")


def test_report_renders_in_headless_chromium(store_path, tmp_path):
    """The page as a reader sees it: table text dark on light, every caption >= 12 px, the maps in
    the colour map's colours with red LSC boxes, and the colour bar drawn."""
    from PIL import Image

    from smug.rendering.browser import chromium, screenshot, text_styles
    from smug.rendering.colormap import colorize, contrast

    if chromium() is None:
        pytest.skip("no chromium binary (CI installs Debian's chromium in .ci/run)")
    page = write_report(store_path, tmp_path / "report.html")
    styles = text_styles(page.read_text())
    assert min(t["size"] for t in styles) >= 12, [t for t in styles if t["size"] < 12][:3]
    assert all(contrast(t["color"], t["background"]) >= 4.5 for t in styles)  # WCAG AA for body text
    caps = [t for t in styles if t["cls"] == "cap"]
    assert len(caps) == 3 * (1 + len(METHODS)) and all(t["size"] >= 12 for t in caps)
    img = np.asarray(Image.open(screenshot(page, tmp_path / "shot.png", 1280, 4000)).convert("RGB")).astype(int)
    assert img.shape[:2] == (4000, 1280) and img.std() > 20  # not blank
    # the summary tables: their light grey header cells (#eee) with dark text
    assert (np.abs(img - 238).max(axis=2) <= 2).sum() > 2000 and (img.max(axis=2) < 80).sum() > 500
    # the maps: many pixels within reach of the colour map's colours, across its range (colour bar + maps)
    ramp = colorize(np.linspace(0, 1, 64)).astype(int)
    packed, counts = np.unique((img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2], return_counts=True)
    colours = np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], axis=1)
    near = np.abs(colours[:, None, :] - ramp[None]).max(axis=2) <= 6  # (colour, ramp step)
    assert counts[near.any(axis=1)].sum() > 3 * 160 * 160  # at least three maps' worth of pixels
    assert near.any(axis=0)[[0, 32, 63]].all()  # dark purple, teal and yellow all present
    red = (img[..., 0] > 180) & (img[..., 1] < 60) & (img[..., 2] < 100)
    assert red.sum() > 200  # the LSC boxes
