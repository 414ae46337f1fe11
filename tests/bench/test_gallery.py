"""The gallery is made one way: its README is written from results.json, every file it lists exists,
and an unknown entry is refused before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys

from smug.bench.gallery import GALLERY, RESULTS, entries, readme


def test_gallery_readme_is_written_from_its_results():
    results = json.loads(RESULTS.read_text())
    assert (GALLERY / "README.md").read_text() == readme(results)  # no hand-edited number
    names = {e.name for e in entries()}
    for name, r in results["entries"].items():
        assert name in names and r["files"], name
        assert all((GALLERY / f).is_file() for f in r["files"]), name
    listed = {f for r in results["entries"].values() for f in r["files"]}
    drawn = {str(p.relative_to(GALLERY)) for p in GALLERY.rglob("*") if p.suffix in (".png", ".html")}
    assert drawn <= listed, drawn - listed  # no picture the script did not make


def test_readme_rows_say_what_each_answer_is():
    facts = {"status": "feasible", "objective": 7, "n_vars": 49, "lower_bound": 5, "keeps_class": True,
             "masked_confidence": 0.91234, "top_k": 20, "gamma": 0.6, "base_size": 30}
    text = readme({"entries": {"mnist-plain": {"command": "smug explain --model mnist-mlp", "files": ["a.png"],
                                               "facts": facts, "made": "smug 0"},
                               "mnist-integrated-gradients": {"command": "c", "files": ["b.png"],
                                                              "facts": {"status": "map", "objective": None,
                                                                        "n_vars": 0}, "made": "smug 0"}}})
    rows = [line for line in text.splitlines() if line.startswith("| [")]
    assert rows[0] == ("| [`a.png`](a.png) | `smug explain --model mnist-mlp` | feasible | 7 / 49 (smug_base 30) | 5 | "
                       "yes | 0.912 | 20 | 0.6 | smug 0 |")
    assert "| map | - | - |" in rows[1]


def test_unknown_entry_is_refused():
    r = subprocess.run([sys.executable, "-m", "smug.bench.gallery", "--only", "no-such"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "unknown entries ['no-such']" in r.stderr
