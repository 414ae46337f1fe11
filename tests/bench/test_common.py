"""smug.bench.common: markdown tables, the docs sections (replaced in place, else appended), options."""

from __future__ import annotations

import argparse
import os
import sys

import pytest

from smug.bench.common import (
    add_doc_args, add_photo_args, append_section, invocation, load_average, photos, publish, section, table, uptime,
    write_section,
)


def test_table_rows_and_rule():
    assert table(["a", "b"], [[1, "x"], ["", 2.5]]) == ["| a | b |", "| --- | --- |", "| 1 | x |", "|  | 2.5 |"]
    assert table(["only"], []) == ["| only |", "| --- |"]


def test_sections_are_replaced_in_place_and_appended_otherwise(tmp_path):
    doc = tmp_path / "docs" / "benchmarks.md"
    write_section("one", "first", doc)  # a missing file starts with a title
    assert doc.read_text() == "# Benchmarks\n\n<!-- one:start -->\nfirst\n<!-- one:end -->\n"
    md = append_section(doc, "Two things", "python -m smug.bench.two --n 3", "body\n")
    assert md == "## Two things\n\nCommand: `python -m smug.bench.two --n 3`  \nbody"
    assert "<!-- two_things:start -->\n## Two things" in doc.read_text()
    write_section("one", "second", doc)
    append_section(doc, None, "cmd", "new body", key="two_things")
    text = doc.read_text()
    assert "\nfirst\n" not in text and "\nbody\n" not in text and text.count(":start -->") == 2
    assert text.index("second") < text.index("new body")  # order kept
    assert section(None, "c", "b") == "Command: `c`  \nb"
    with pytest.raises(ValueError, match="key or a title"):
        append_section(doc, None, "c", "b")


def test_publish_honours_no_doc(tmp_path, capsys):
    ap = argparse.ArgumentParser()
    add_doc_args(ap)
    doc = tmp_path / "b.md"
    a = ap.parse_args(["--doc", str(doc), "--no-write"])
    assert a.no_doc
    md = publish(a, "k", "T", "cmd", "body")
    assert not doc.exists() and md in capsys.readouterr().out
    publish(ap.parse_args(["--doc", str(doc)]), "k", "T", "cmd", "body")
    assert "<!-- k:start -->\n## T" in doc.read_text()


def test_photos_and_their_options(tmp_path, monkeypatch):
    for name in ("b.JPEG", "a.JPEG", "c.JPEG", "d.png"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in photos(tmp_path)] == ["a.JPEG", "b.JPEG", "c.JPEG"]
    assert [p.name for p in photos(tmp_path, n=1, every=2)] == ["a.JPEG"]
    with pytest.raises(SystemExit, match="no images"):
        photos(tmp_path / "missing")
    ap = argparse.ArgumentParser()
    add_photo_args(ap, images=5, every=3)
    a = ap.parse_args(["--data", str(tmp_path)])
    assert (a.data, a.images, a.every) == (tmp_path, 5, 3)
    monkeypatch.setattr(sys, "argv", ["x.py", "--images", "2"])
    assert invocation("table1", prefix="nice -n 10") == "nice -n 10 python -m smug.bench.table1 --images 2"


def test_machine_load():
    assert len(load_average().split(", ")) == 3
    assert "load average" in uptime()
    monkeypatch_env = dict(os.environ, PATH="")  # no uptime binary: the load averages instead
    import subprocess

    out = subprocess.run([sys.executable, "-c", "from smug.bench.common import uptime; print(uptime())"],
                         capture_output=True, text=True, env=monkeypatch_env, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("load average: "), out.stderr
