"""The farm's SQLite store: one row per job id, written only by the submitting process.

A row is ``pending`` from submission until its result arrives, then ``done`` (the
pipeline answered: any status, ``optimal`` to ``unknown``, with the full
:class:`~smug.pipeline.Explanation` JSON and its arrays as one compressed ``.npz``
blob) or ``failed`` (the reason, e.g. a bad input found on the worker or "killed its
worker 3 times").  Each result is committed when it arrives (WAL journal), so a killed
client loses at most the jobs that were in flight; the job id is the primary key, so a
re-run never duplicates a row.  Readers (``farm status``, ``farm export``) may open
the file while a batch writes it.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from smug.farm.jobs import SCHEME, Job
from smug.farm.storefile import StoreError, connect, reading, writing
from smug.pipeline import Explanation

SCHEMA_VERSION = 1
STATES = ("pending", "done", "failed")
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    line INTEGER, name TEXT, model TEXT, input TEXT, method TEXT, request TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
    status TEXT, objective INTEGER, lower_bound INTEGER, certified INTEGER,
    reason TEXT, attempts INTEGER NOT NULL DEFAULT 0, seconds REAL, worker TEXT,
    result TEXT, arrays BLOB, submitted REAL, finished REAL);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
"""
SCALARS = ("id", "line", "name", "model", "input", "method", "state", "status", "objective", "lower_bound",
           "certified", "reason", "attempts", "seconds", "worker", "submitted", "finished")


@dataclass(frozen=True)
class Record:
    """What the submitting process learnt about one finished job."""

    job_id: str
    state: str  # done | failed
    result: dict | None = None  # Explanation.to_json()
    arrays: bytes | None = None  # npz of the image arrays
    reason: str | None = None
    attempts: int = 1
    seconds: float | None = None
    worker: str | None = None


class Store:
    """The SQLite file of a batch (or of several: it is a set of jobs keyed by id)."""

    def __init__(self, path: str | Path, create: bool = True):
        """Open (``create``: as the writer, making a new store if there is none; else read-only) after
        the checks of :func:`smug.farm.storefile.connect`: any fault is one :class:`StoreError`."""
        self.path = Path(path)
        self.db = connect(self.path, create, f"{SCHEMA}INSERT INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');")
        with reading(self.path):
            row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None or str(row[0]) != str(SCHEMA_VERSION):
            self.db.close()
            raise StoreError(f"{self.path} is a farm store of schema {None if row is None else row[0]}; "
                             f"this smug reads {SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writing (the submitting process only) ----------------------------------------
    def add(self, jobs: Iterable[Job]) -> int:
        """Record ``jobs`` as pending unless the store has them already; the number added."""
        now = time.time()
        rows = [(j.id, j.line, j.name, j.request.model, j.request.input_label(), j.request.method,
                 json.dumps({**j.request.to_json(), "id_scheme": SCHEME}), now) for j in jobs]
        with writing(self.path), self.db:
            before = self.db.total_changes
            self.db.executemany("INSERT OR IGNORE INTO jobs (id, line, name, model, input, method, request, state, "
                                "submitted) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)", rows)
            return self.db.total_changes - before

    def todo(self, ids: Iterable[str], retry_failed: bool = False) -> set[str]:
        """Which of ``ids`` still need running: pending ones (and failed ones if ``retry_failed``)."""
        states = ("pending", "failed") if retry_failed else ("pending",)
        ids = list(ids)
        out = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            out |= {r[0] for r in self.db.execute(
                f"SELECT id FROM jobs WHERE id IN ({marks}) AND state IN ({','.join('?' * len(states))})",
                (*chunk, *states))}
        return out

    def finish(self, rec: Record) -> None:
        """Write one finished job (committed at once); attempts add up over re-runs."""
        r = rec.result or {}
        cert = r.get("certificate") or {}
        valid = cert.get("valid")
        with writing(self.path), self.db:
            self.db.execute(
                "UPDATE jobs SET state=?, status=?, objective=?, lower_bound=?, certified=?, reason=?, "
                "attempts=attempts+?, seconds=?, worker=?, result=?, arrays=?, finished=? WHERE id=?",
                (rec.state, r.get("status"), r.get("objective"), r.get("lower_bound"),
                 None if valid is None else int(bool(valid)), rec.reason, rec.attempts, rec.seconds, rec.worker,
                 None if rec.result is None else json.dumps(rec.result), rec.arrays, time.time(), rec.job_id))

    # ---- reading ------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Jobs per state (every state present, zero included) and the total."""
        with reading(self.path):
            got = dict(self.db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        counts = {s: int(got.get(s, 0)) for s in STATES}
        return {**counts, "total": sum(counts.values())}

    def failures(self) -> list[dict]:
        """The failed jobs: id, line, name, input, model, method, reason, attempts."""
        cur = self.db.execute("SELECT id, line, name, input, model, method, reason, attempts FROM jobs "
                              "WHERE state='failed' ORDER BY line, id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur]

    def rows(self, states: Iterable[str] = STATES, results: bool = False) -> Iterator[dict]:
        """Every job of ``states`` in manifest order: the scalar columns, ``request`` (and ``result``) as JSON."""
        states = tuple(states)
        cols = [*SCALARS, "request", *(["result"] if results else [])]
        cur = self.db.execute(f"SELECT {', '.join(cols)} FROM jobs WHERE state IN ({','.join('?' * len(states))}) "
                              f"ORDER BY line, id", states)
        with reading(self.path):
            for row in cur:
                d = dict(zip(cols, row))
                d["request"] = json.loads(d["request"])
                if results:
                    d["result"] = None if d["result"] is None else json.loads(d["result"])
                yield d

    def finished_since(self, t: float) -> list[dict]:
        """Jobs finished at or after time ``t`` (id, state, reason, attempts, finished), oldest first."""
        cur = self.db.execute("SELECT id, state, reason, attempts, finished FROM jobs WHERE state IN ('done', 'failed') "
                              "AND finished >= ? ORDER BY finished", (t,))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur]

    def explanation(self, job_id: str) -> Explanation:
        """The stored answer of a done job, arrays included (nothing is recomputed)."""
        row = self.db.execute("SELECT state, result, arrays FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job {job_id} in {self.path}")
        if row[0] != "done":
            raise KeyError(f"job {job_id} is {row[0]}, it has no explanation")
        return Explanation.from_json(json.loads(row[1]), unpack_arrays(row[2]))

    def superseded(self, jobs: Iterable[Job]) -> list[dict]:
        """Rows written under an older id scheme (:data:`~smug.farm.jobs.SCHEME`; rows without
        ``id_scheme`` are scheme 1) that ``jobs`` ask again (the same line, name, input, model and
        method) under another id: they stay readable and exportable, and are not reused, so a run
        of ``jobs`` recomputes them.  Each: id, line, name, input, model, method, state, id_scheme.
        Only the older rows are held while ``jobs`` stream past (none: ``jobs`` are not read)."""
        cols = ("id", "line", "name", "input", "model", "method", "state")
        older: dict[tuple, list[dict]] = {}
        with reading(self.path):
            for row in self.db.execute(f"SELECT {', '.join(cols)}, COALESCE(json_extract(request, '$.id_scheme'), 1) "
                                       "AS scheme FROM jobs WHERE scheme != ? ORDER BY line, id", (SCHEME,)):
                r = {**dict(zip(cols, row)), "id_scheme": row[-1]}
                older.setdefault((r["line"], r["name"], r["input"], r["model"], r["method"]), []).append(r)
        if not older:
            return []
        asked, have = set(), set()
        for j in jobs:
            key = (j.line, j.name, j.request.input_label(), j.request.model, j.request.method)
            if key in older:
                asked.add(key)
                have.add(j.id)
        return [row for key, rows in older.items() if key in asked for row in rows if row["id"] not in have]

    def ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT id FROM jobs ORDER BY line, id")]


COMPRESS_ABOVE = 64 << 10  # raw bytes: smaller arrays (an MNIST digit's) are stored as they are


def pack_arrays(arrays: dict[str, np.ndarray | None]) -> bytes | None:
    """The non-missing arrays as one ``.npz`` blob (None when there is none), compressed when
    they hold more than :data:`COMPRESS_ABOVE` bytes (compressing a digit's maps took longer
    than everything else the farm adds to a job)."""
    present = {k: np.asarray(v) for k, v in arrays.items() if v is not None}
    if not present:
        return None
    buf = io.BytesIO()
    save = np.savez_compressed if sum(a.nbytes for a in present.values()) > COMPRESS_ABOVE else np.savez
    save(buf, **present)
    return buf.getvalue()


def unpack_arrays(blob: bytes | None) -> dict[str, np.ndarray] | None:
    """The inverse of :func:`pack_arrays`."""
    if blob is None:
        return None
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}
