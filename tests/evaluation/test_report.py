"""smug.evaluation.report (``smug report``): a self-contained HTML page; every picture a decodable data URI; the
page opens in headless Chromium and the screenshot shows the table and image rows."""

from __future__ import annotations

import base64
import io
import re
import os
import shutil
import signal
import subprocess

import numpy as np
import pytest

from smug.evaluation.report import line_plot_svg, render, summary_tables, write_report
from smug.evaluation.runner import evaluate
from smug.evaluation.store import EvalConfig, Store

METHODS = ["smug", "smug_base", "ig", "centerbox", "maxbox"]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, make_digits):
    d = tmp_path_factory.mktemp("report")
    paths = make_digits(d, [(0, 0), (3, 1), (-2, 2)])
    db = d / "eval.sqlite"
    evaluate(paths, METHODS, db, EvalConfig(model="mnist-mlp", n_thresholds=30), progress=False)
    s = Store(db)
    for p in paths:  # a small alignment experiment, as bench/alignment.py stores it
        s.put_experiment("alignment", str(p), {"pretrained/gbp/0": 0.1, "pretrained/gbp/2": 0.4,
                                               "random-gaussian/gbp/0": 0.2, "random-gaussian/gbp/2": 0.7})
        s.put_experiment("sanity", str(p), {"gradient/0": 1.0, "gradient/2": 0.25})
    s.close()
    return db


def test_summary_matches_the_rows(store_path):
    s = Store(store_path)
    rows = s.results()
    t = summary_tables(s)
    s.close()
    assert t["methods"] == ["smug", "smug_base", "integrated_gradients", "centerbox", "maxbox"]
    lsc = sorted(r["lsc"] for r in rows if r["method"] == "smug")
    assert t["lsc"][0].startswith(f"{np.median(lsc):.2f} (")
    assert t["n_complete"] == 3 and t["sparsity"][4] == "100.0 ± 0.0"  # MAXBOX keeps everything
    wins = [float(w.split(" ")[0]) for w in t["win"]]
    assert sum(wins) >= 100.0 - 1e-9  # each image has at least one winner (ties count for all)


def test_every_image_is_a_decodable_data_uri(store_path):
    from PIL import Image

    s = Store(store_path)
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


def test_plot_and_missing_store(tmp_path):
    assert line_plot_svg({}, "t", "x", "y") == ""
    svg = line_plot_svg({"a": [(0, 0.1), (1, 0.5)], "random b": [(0, 0.2), (1, float("nan"))]}, "t", "x", "y")
    assert svg.count("<polyline") == 2 and "stroke-dasharray" in svg
    with pytest.raises(ValueError, match="no evaluation store"):
        write_report(tmp_path / "none.sqlite", tmp_path / "r.html")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_headless_chromium(store_path, tmp_path):
    from PIL import Image

    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary (CI installs Debian's chromium in .ci/run)")
    page = write_report(store_path, tmp_path / "report.html")
    shot = tmp_path / "shot.png"
    log = tmp_path / "chromium.log"
    with open(log, "wb") as out:  # output to a file and its own session: a hung child cannot block the test
        proc = subprocess.Popen([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                                 f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                                 "--virtual-time-budget=5000", f"--screenshot={shot}", "--window-size=1200,2000",
                                 page.resolve().as_uri()], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert shot.is_file(), log.read_text(errors="replace")[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (2000, 1200)
    assert img.std() > 20  # not blank
    # the summary table: dark text on its light grey header cells (#eee) in the top part
    top = img[:500]
    assert (np.abs(top - 238).max(axis=2) <= 2).sum() > 2000
    assert (top.max(axis=2) < 80).sum() > 500
    # image rows: the maps' red/blue colours and the green LSC boxes
    sat = img.max(axis=2) - img.min(axis=2)
    assert (sat > 120).sum() > 3 * 160 * 20
    green = (img[..., 1] > 150) & (img[..., 0] < 60) & (img[..., 2] < 60)
    assert green.sum() > 200
