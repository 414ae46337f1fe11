"""smug inspect: stats, forced blocks, redundant and unsatisfiable rows, a minimal core for an
infeasible gamma (verified unsatisfiable and minimal), slacks and why-this-block, the page."""

from __future__ import annotations

import numpy as np
import pytest

import _reference as ref  # tests/solver/_reference.py
from smug.debugging import read_dump
from smug.debugging.inspect import analyse, inspect
from smug.debugging.solve import satisfiable
from smug.solver.dump_formats import write_dump


def _dump(tmp_path, problem):
    meta = {"kind": "first-layer", "model": "test", "target": 0, "n_vars": problem.n_vars, "params": {"window": 1},
            "variables": {n: {"block": [0, j], "pixel": [0, j]} for j, n in enumerate(problem.var_names)}}
    path = tmp_path / "p.smt2"
    path.write_text(write_dump(problem, "smt2", meta))
    return read_dump(path)


def test_infeasible_gamma_gets_a_minimal_unsatisfiable_core(tmp_path):
    # rows 0 and 1 exclude each other (m0 on / m0 off), row 2 is redundant, row 3 forces m1
    W = [[1.0, 0, 0], [-1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]]
    x, base = [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]
    problem = ref.make_problem(W, x, base, [0, 1, 2], 0.5, bias=[0.0, 1.0, 5.0, 0.0])
    assert ref.ref_minimum(problem)[0] is None
    dump = _dump(tmp_path, problem)
    report = analyse(dump)
    assert report["infeasible"]
    core = [r for r in dump.rows if r.name in report["minimal_cores"][0]]
    assert not satisfiable(core)
    assert all(satisfiable(core[:i] + core[i + 1:]) for i in range(len(core)))
    assert sorted(report["minimal_cores"][0]) == ["c0", "c1"]
    assert report["redundant_rows"] == ["c2"]
    assert "m_r0_c1" in report["forced_blocks"]


@pytest.mark.parametrize("seed", [521, 523, 554])
def test_cores_of_random_infeasible_problems_are_unsat_and_minimal(tmp_path, seed):
    problem = ref.random_problem(seed, 6, 8, gamma=0.0)
    W = problem.weights.toarray()
    # append the negation of the first two rows: infeasible, the core needs a row and its negation
    neg = ref.make_problem(np.vstack([W, -W[:1]]), problem.x, problem.baseline, problem.group, 0.0,
                           bias=np.r_[problem.bias, -problem.bias[:1]])
    dump = _dump(tmp_path, neg)
    report = analyse(dump)
    assert report["infeasible"]
    core = [r for r in dump.rows if r.name in report["minimal_cores"][0]]
    assert not satisfiable(core) and all(satisfiable(core[:i] + core[i + 1:]) for i in range(len(core)))


def test_with_a_result_slack_and_why(artefacts, tmp_path):
    out = tmp_path / "page"
    report = inspect(str(artefacts["first-layer"]["smt2"]), str(artefacts["first-layer"]["result"]),
                     image=None, out_dir=str(out))
    assert not report["failing_rows"] and not report["infeasible"]
    assert len(report["why"]) == len(report["why"])  # one entry per kept block
    assert all(report["why"].values()), "a minimal mask: every kept block is needed by some row"
    assert all(report["slack"][r] > 0 for r in report["tight_rows"])
    assert report["row_width_histogram"] and report["components"]
    for name in ("index.html", "report.json", "kept.png", "why.png"):
        assert (out / name).is_file()
    page = (out / "index.html").read_text()
    assert "data:image/png;base64," in page and page.count("<img") == page.count("<figcaption>")
    assert page.index("Why is each block in the mask?") < page.index("<details>")  # raw JSON last, collapsed
    assert all(block in page for block in report["why"])


def test_text_and_network_dumps(artefacts):
    text = inspect(str(artefacts["text"]["wcnf"]))
    assert text["clauses"] > 0 and text["components"]
    net = inspect(str(artefacts["whole-network"]["smt2"]))
    assert net["kind"] == "whole-network" and len(net["margin_rows"]) == 9


def test_the_page_explains_an_infeasible_problem(tmp_path):
    W = [[1.0, 0, 0], [-1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]]
    problem = ref.make_problem(W, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0, 1, 2], 0.5, bias=[0.0, 1.0, 5.0, 0.0])
    dump = _dump(tmp_path, problem)
    inspect(dump.path, out_dir=str(tmp_path / "page"))
    page = (tmp_path / "page" / "index.html").read_text()
    assert "<h1>smug inspect: test, class 0, method smug (first-layer dump), status no result given</h1>" in page
    assert "No mask satisfies every row" in page and "Conflict 1: these 2 rows" in page
    conflict = page[page.index("Conflict 1"):page.index("How the problem is built")]
    assert "<td>c0</td>" in conflict and "<td>c1</td>" in conflict and "<td>m_r0_c0</td>" in conflict  # wants on/off
    assert "Blocks every mask needs" in page and "forced.png" not in page  # pictures are inline data
    assert page.index("<pre>") > page.index("<details>")


def test_inspect_page_in_headless_chromium(artefacts, tmp_path):
    """The page as a reader sees it: title and summary above the fold, no raw JSON there, every text
    >= 12 px at WCAG AA contrast, every picture captioned with a colour bar or a legend."""
    from smug.rendering.browser import chromium, text_styles
    from smug.rendering.colormap import contrast

    if chromium() is None:
        pytest.skip("no chromium binary (CI installs Debian's chromium in .ci/run)")
    result = tmp_path / "e" / "result.json"
    result.parent.mkdir()
    result.write_text(artefacts["first-layer"]["result"].read_text())
    inspect(str(artefacts["first-layer"]["smt2"]), str(result), out_dir=str(tmp_path / "page"))
    styles = text_styles((tmp_path / "page" / "index.html").read_text())
    assert min(t["size"] for t in styles) >= 12, [t for t in styles if t["size"] < 12][:3]
    assert all(contrast(t["color"], t["background"]) >= 4.5 for t in styles)
    fold = [t for t in styles if t["top"] < 900]
    assert any(t["tag"] == "h1" and "mnist-mlp" in t["text"] and "status optimal" in t["text"] for t in fold)
    assert {"status", "objective", "lower bound (proven)"} <= {t["text"] for t in fold if t["tag"] == "th"}
    assert not any(t["tag"] == "pre" or t["text"].startswith("{") for t in styles)  # raw JSON: collapsed
    captions = [t for t in styles if t["tag"] == "b" and t["top"] > 0]
    assert any("The result's mask" in t["text"] for t in captions) and any("Why" in t["text"] for t in captions)
