"""``smug farm status|export|run`` through :func:`add_commands` / :func:`run_command` (no cluster needed)."""

from __future__ import annotations

import argparse
import csv
import io
import json

import pytest

from smug.farm import ManifestError, Store, job_of
from smug.farm.commands import add_commands, run_command
from smug.farm.export import export
from smug.farm.store import Record
from smug.farm.storefile import StoreError
from smug.pipeline import ExplainRequest


def _parse(*argv):
    p = argparse.ArgumentParser(prog="smug")
    add_commands(p.add_subparsers(dest="command"))
    return p.parse_args(list(argv))


@pytest.fixture
def store(tmp_path):
    jobs = [job_of(ExplainRequest.build(None, "mnist-mlp", method="whole-network", delta=d, name=f"j{d}"), d + 1)
            for d in range(3)]
    path = tmp_path / "r.sqlite"
    with Store(path) as s:
        s.add(jobs)
        s.finish(Record(jobs[0].id, "done", {"status": "optimal", "objective": 3, "certificate": {"valid": True},
                                             "target": 3, "masked_prediction": {"keeps_class": True}}))
        s.finish(Record(jobs[1].id, "failed", reason="killed its worker 3 times", attempts=3))
    return path


def test_status_counts_and_reasons(store, capsys):
    assert run_command(_parse("farm", "status", "--db", str(store))) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["done"], out["failed"], out["pending"], out["total"]) == (1, 1, 1, 3)
    assert out["failures"][0]["reason"] == "killed its worker 3 times" and out["failures"][0]["name"] == "j1"


def test_export_jsonl_and_csv(store, tmp_path):
    with Store(store) as s:
        rows = [json.loads(line) for line in export(s, "jsonl").decode().splitlines()]
        assert [r["state"] for r in rows] == ["done", "failed", "pending"]
        assert rows[0]["result"]["objective"] == 3 and rows[0]["request"]["method"] == "whole-network"
        table = list(csv.DictReader(io.StringIO(export(s, "csv", tmp_path / "r.csv").decode())))
        assert table[0]["status"] == "optimal" and table[0]["keeps_class"] == "True" and table[1]["attempts"] == "3"
        assert (tmp_path / "r.csv").read_text().splitlines()[0].startswith("id,line,name")
    assert run_command(_parse("farm", "export", "--db", str(store), "--format", "csv", "--state", "failed",
                              "--out", str(tmp_path / "f.csv"))) == 0
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 2


def test_export_parquet_has_the_csv_rows(store, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="Parquet export needs pyarrow (the farm extra installs it)")
    with Store(store) as s:
        export(s, "parquet", tmp_path / "r.parquet")
        flat = list(csv.DictReader(io.StringIO(export(s, "csv").decode())))
    table = pq.read_table(tmp_path / "r.parquet").to_pylist()
    assert [r["id"] for r in table] == [r["id"] for r in flat]
    assert [r["state"] for r in table] == ["done", "failed", "pending"] and table[0]["status"] == "optimal"
    assert table[1]["attempts"] == 3 and table[0]["objective"] == 3


def test_missing_store_and_bad_manifest_are_errors(tmp_path):
    with pytest.raises(StoreError, match="no farm store"):
        run_command(_parse("farm", "status", "--db", str(tmp_path / "none.sqlite")))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"model": "mnist-mlp", "method": "whole-network"}\n{"model": "mnist-mlp", "top_k": 0}\n')
    with pytest.raises(ManifestError, match="line 2: top_k"):
        run_command(_parse("farm", "run", str(manifest), "--db", str(tmp_path / "r.sqlite")))
    assert not (tmp_path / "r.sqlite").exists()  # nothing submitted, nothing written
    with pytest.raises(ValueError, match="not both"):
        run_command(_parse("farm", "run", str(manifest), "--images", "*.png", "--db", str(tmp_path / "r.sqlite")))


def _closed_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address,message", [("not-an-address", "is not a Dask scheduler's address"),
                                             ("tcp://127.0.0.1:{port}", "no Dask scheduler at .* refused")])
def test_a_scheduler_nobody_runs_is_refused_before_the_store_is_written(tmp_path, address, message):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"model": "mnist-mlp", "method": "whole-network"}\n')
    db = tmp_path / "r.sqlite"
    with pytest.raises(ValueError, match=message):
        run_command(_parse("farm", "run", str(manifest), "--db", str(db), "--scheduler",
                           address.format(port=_closed_port())))
    assert not db.exists()


def test_the_help_s_manifest_examples_are_valid_manifests(tmp_path):
    from PIL import Image

    from smug.farm.commands import MANIFEST_EXAMPLE
    from smug.farm.manifest import read_manifest

    lines = [line.strip() for line in MANIFEST_EXAMPLE.splitlines() if line.startswith("  ")]
    jsonl, csv_lines = [x for x in lines if x.startswith("{")], [x for x in lines if not x.startswith("{")]
    assert len(jsonl) >= 3 and len(csv_lines) == 2
    (tmp_path / "digits").mkdir()
    (tmp_path / "photos").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "digits" / "seven.png")
    Image.new("RGB", (256, 256)).save(tmp_path / "photos" / "cat.jpg")
    (tmp_path / "m.jsonl").write_text("\n".join(jsonl) + "\n")
    (tmp_path / "m.csv").write_text("\n".join(csv_lines) + "\n")
    for name, count in (("m.jsonl", len(jsonl)), ("m.csv", 1)):
        manifest = read_manifest(tmp_path / name)
        assert not manifest.errors and len(manifest.checked().jobs) == count
