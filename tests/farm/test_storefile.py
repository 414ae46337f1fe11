"""The farm store never lies (smug.farm.storefile): ``smug farm status|export|run`` as a user runs them.

A damaged, truncated, foreign or missing store, a directory, a read-only file system and a
full disk each end in one ``smug: error:`` line and exit status 2 with nothing written; a
read-only file system still lets ``status`` and ``export`` read the store."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from smug.farm import Store, job_of
from smug.farm.store import Record, pack_arrays
from smug.pipeline import ExplainRequest

JOBS = 30


def smug(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SMUG_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "smug", "farm", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def one_error(out: subprocess.CompletedProcess, *words: str) -> None:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("smug: error: "), out.stderr
    assert "Traceback" not in out.stderr and all(w.lower() in lines[0].lower() for w in words), lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the sha256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def jobs(n: int = JOBS) -> list:
    return [job_of(ExplainRequest.build(None, "mnist-mlp", method="whole-network", timeout=1 + i / 1000, name=f"j{i}"),
                   i + 1) for i in range(n)]


@pytest.fixture
def done_store(tmp_path) -> Path:
    """A store of 30 done jobs, each with a result and two 28x28 arrays (about 0.5 MB)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "store" / "r.sqlite"
    with Store(path) as s:
        js = jobs()
        s.add(js)
        for j in js:
            s.finish(Record(j.id, "done", {"status": "optimal", "objective": 3, "certificate": {"valid": True},
                                           "blocks": list(range(200))},
                            pack_arrays({"mask": rng.random((28, 28)), "ig": rng.random((28, 28))})))
    return path


@pytest.fixture
def manifest(tmp_path) -> Path:
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps({"model": "mnist-mlp", "method": "whole-network", "timeout": 5 + i,
                                        "name": f"m{i}"}) + "\n" for i in range(6)))
    return path


@contextlib.contextmanager
def tmpfs(where: Path, size: str):
    """A tmpfs of ``size`` mounted at ``where`` (skips the test where this user cannot mount)."""
    where.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                                        str(where)], capture_output=True).returncode != 0:
        pytest.skip("needs permission to mount a tmpfs (a small or read-only file system)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_damaged_store_is_found_by_status_run_and_export(done_store, manifest):
    assert json.loads(smug("status", "--db", str(done_store)).stdout)["done"] == JOBS
    size = done_store.stat().st_size
    with open(done_store, "r+b") as f:  # 4 KB flipped in the middle of the file
        f.seek(size // 2 // 4096 * 4096)
        page = f.read(4096)
        f.seek(size // 2 // 4096 * 4096)
        f.write(bytes(b ^ 0xFF for b in page))
    before = snapshot(done_store.parent)
    for args in (["status"], ["export", "--format", "jsonl"], ["run", str(manifest), "--workers", "1", "--quiet"]):
        out = smug(*args, "--db", str(done_store))
        one_error(out, "damaged", str(done_store))
        assert out.stdout == "" and snapshot(done_store.parent) == before, args  # nothing printed or written


@pytest.mark.parametrize("fault", ["truncated", "not sqlite", "directory", "empty", "missing", "foreign sqlite"])
def test_every_store_fault_is_one_line_and_nothing_is_written(done_store, manifest, fault):
    path = done_store
    if fault == "truncated":
        os.truncate(path, path.stat().st_size // 2)
    elif fault == "not sqlite":
        path.write_bytes(b"id,state\n" * 1000)
    elif fault == "directory":
        path.unlink()
        path.mkdir()
    elif fault == "empty":
        path.write_bytes(b"")
    elif fault == "missing":
        path.unlink()
    else:
        import sqlite3

        path.unlink()
        with contextlib.closing(sqlite3.connect(path)) as db, db:
            db.execute("CREATE TABLE photos (name TEXT)")
    before = snapshot(path.parent)
    commands = [["status"], ["export"]]
    if fault not in ("missing", "empty"):  # a run makes a new store where there is none
        commands.append(["run", str(manifest), "--workers", "1", "--quiet"])
    for args in commands:
        out = smug(*args, "--db", str(path))
        one_error(out, str(path))
        assert out.stdout == "" and snapshot(path.parent) == before, (fault, args)
        assert path.is_dir() == (fault == "directory")


def test_a_read_only_file_system_is_read_and_never_written(done_store, manifest, tmp_path):
    with tmpfs(tmp_path / "ro", "4m") as fs:
        shutil.copy(done_store, fs / "r.sqlite")
        assert subprocess.run(["mount", "-o", "remount,ro", str(fs)], capture_output=True).returncode == 0
        status = smug("status", "--db", str(fs / "r.sqlite"))
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["done"] == JOBS
        rows = [json.loads(line) for line in smug("export", "--db", str(fs / "r.sqlite")).stdout.splitlines()]
        assert len(rows) == JOBS and all(r["result"]["objective"] == 3 for r in rows)
        for db in (fs / "r.sqlite", fs / "new.sqlite", fs / "sub" / "new.sqlite"):
            one_error(smug("run", str(manifest), "--workers", "1", "--quiet", "--db", str(db)), "read-only")
        assert sorted(p.name for p in fs.iterdir()) == ["r.sqlite"]


def test_a_full_disk_is_one_line_and_the_run_resumes(manifest, tmp_path):
    with tmpfs(tmp_path / "tiny", "48k") as fs:  # not even room for a new store's tables: nothing is left
        one_error(smug("run", str(manifest), "--workers", "1", "--quiet", "--db", str(fs / "r.sqlite")), "full")
        assert list(fs.iterdir()) == []
    with tmpfs(tmp_path / "small", "160k") as fs:  # full after a few results
        one_error(smug("run", str(manifest), "--workers", "1", "--quiet", "--db", str(fs / "r.sqlite")), "full",
                  "run again")
        for name in ("r.sqlite", "r.sqlite-wal"):  # the store as it was left, its journal included
            if (fs / name).exists():
                shutil.copy(fs / name, tmp_path / name)
    kept = json.loads(smug("status", "--db", str(tmp_path / "r.sqlite")).stdout)
    assert kept["total"] == 6 and kept["failed"] == 0 and 0 < kept["done"] < 6
    again = smug("run", str(manifest), "--workers", "1", "--quiet", "--db", str(tmp_path / "r.sqlite"))
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["skipped"] == kept["done"] and summary["done"] == 6 - kept["done"]
    with Store(tmp_path / "r.sqlite", create=False) as s:
        assert s.counts()["done"] == 6
