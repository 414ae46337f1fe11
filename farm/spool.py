"""A batch's jobs in order, kept on disk: a manifest of any length in bounded memory.

A :class:`Spool` is a private temporary SQLite database (SQLite deletes it when the
connection closes) of ``(seq, id, line, job)`` rows, ``job`` the pickled
:class:`~smug.farm.jobs.Job`.  It keeps the first job of each id; it is read in order,
:data:`CHUNK` rows at a time, as often as needed (a run reads it once to record its jobs in
the store and once to send them), so a 100,000-line manifest costs the submitting process
a chunk of jobs, not all of them (``bench/farm.py --noop``).
"""

from __future__ import annotations

import pickle
import sqlite3
from collections.abc import Sequence
from typing import Iterable, Iterator

from smug.farm.jobs import Job

CHUNK = 1000  # rows per transaction when adding, per read when iterating


class Spool(Sequence):
    """An ordered, id-unique sequence of jobs on disk (a ``Sequence[Job]``)."""

    def __init__(self, jobs: Iterable[Job] = ()):
        self.db = sqlite3.connect("", check_same_thread=False)  # "": a private on-disk database, gone at close
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE jobs (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, line INTEGER, "
                        "job BLOB NOT NULL)")
        self.size = 0
        for job in jobs:
            self.add(job)

    def add(self, job: Job) -> bool:
        """Keep ``job`` at the end unless a job of its id is kept already; whether it was added."""
        cur = self.db.execute("INSERT OR IGNORE INTO jobs (id, line, job) VALUES (?, ?, ?)",
                              (job.id, job.line, pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)))
        if cur.rowcount == 0:
            return False
        self.size += 1
        if self.size % CHUNK == 0:
            self.db.commit()
        return True

    def line_of(self, job_id: str) -> int | None:
        """The line of the kept job with id ``job_id`` (None: none kept, or it has no line)."""
        row = self.db.execute("SELECT line FROM jobs WHERE id=?", (job_id,)).fetchone()
        return None if row is None else row[0]

    def chunks(self) -> Iterator[list[Job]]:
        """The jobs in order, :data:`CHUNK` at a time (each chunk read by one query)."""
        self.db.commit()
        last = 0
        while True:
            rows = self.db.execute("SELECT seq, job FROM jobs WHERE seq > ? ORDER BY seq LIMIT ?",
                                   (last, CHUNK)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            yield [pickle.loads(blob) for _, blob in rows]

    def __iter__(self) -> Iterator[Job]:
        for chunk in self.chunks():
            yield from chunk

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        i = index + self.size if index < 0 else index
        if not 0 <= i < self.size:
            raise IndexError(f"job {index} of {self.size}")
        self.db.commit()
        (blob,) = self.db.execute("SELECT job FROM jobs WHERE seq=?", (i + 1,)).fetchone()  # seq runs 1, 2, ...
        return pickle.loads(blob)

    def close(self) -> None:
        self.db.close()
