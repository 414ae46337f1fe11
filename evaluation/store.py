"""The SQLite store of ``smug evaluate``: one file per evaluation (one config; many images and methods).

Every finished (image, method) pair is committed at once, so a re-run with the same
file and settings skips what is done (:mod:`smug.evaluation.runner`); benchmarks keep
their own experiments in the same file (``experiments`` table).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from smug.pipeline.request import DEFAULT_TIMEOUT, SmugConfig


@dataclass(frozen=True)
class EvalConfig:
    """Settings that change the numbers; a store keeps the one it was made with."""

    model: str = "efficientnet-lite0"
    top_k: int = SmugConfig.top_k  # SMUG's parameters: the pipeline's defaults
    gamma: float = SmugConfig.gamma
    window: int = SmugConfig.window
    timeout: float = DEFAULT_TIMEOUT
    n_thresholds: int = 100
    area_floor: float = 0.05
    optbox_cells: int = 10
    stopping: bool = False
    stop_window: int = 4
    insertion_deletion: bool = False
    id_steps: int = 50
    lsc_uint8: bool = False  # the reference code's per-crop min-max + uint8 rounding (see metrics/lsc.py)


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
    image TEXT PRIMARY KEY, name TEXT, target INTEGER, target_name TEXT, confidence REAL, picture BLOB);
CREATE TABLE IF NOT EXISTS results (
    image TEXT NOT NULL, method TEXT NOT NULL, target INTEGER, lsc REAL, area REAL, confidence REAL,
    box TEXT, threshold REAL, boxes INTEGER, sparsity REAL, seconds REAL,
    stop_size INTEGER, stop_fraction REAL, stop_seconds REAL, insertion_auc REAL, deletion_auc REAL,
    extra TEXT, map_png BLOB, keeps_class INTEGER, masked_confidence REAL, PRIMARY KEY (image, method));
CREATE TABLE IF NOT EXISTS claims (
    image TEXT NOT NULL, method TEXT NOT NULL, owner TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    PRIMARY KEY (image, method));
CREATE TABLE IF NOT EXISTS experiments (
    experiment TEXT NOT NULL, image TEXT NOT NULL, key TEXT NOT NULL, value REAL,
    PRIMARY KEY (experiment, image, key));
"""

RESULT_COLUMNS = ("target", "lsc", "area", "confidence", "box", "threshold", "boxes", "sparsity", "seconds",
                  "stop_size", "stop_fraction", "stop_seconds", "insertion_auc", "deletion_auc", "extra", "map_png",
                  "keeps_class", "masked_confidence")
# Columns added after the first release: (name, SQL type); a store made before gets them (NULL) on opening.
ADDED_COLUMNS = (("keeps_class", "INTEGER"), ("masked_confidence", "REAL"))


def _alive(host: str, pid: int) -> bool:
    """Whether the run that made a claim may still be running (a process on another host: assumed so)."""
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EvalStore:
    """The SQLite file of one evaluation (one config; many images and methods)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path), timeout=60.0)  # other runs may hold the lock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns a store made by an older version lacks (their values stay NULL)."""
        have = {r[1] for r in self.db.execute("PRAGMA table_info(results)")}
        missing = [(name, kind) for name, kind in ADDED_COLUMNS if name not in have]
        for name, kind in missing:
            try:
                with self.db:
                    self.db.execute(f"ALTER TABLE results ADD COLUMN {name} {kind}")
            except sqlite3.OperationalError as err:  # another process opening the same store added it first
                if "duplicate column" not in str(err):
                    raise

    def close(self, discard_empty: bool = False) -> None:
        """Close the file; with ``discard_empty``, delete it when it holds no image, result, experiment or
        claim (a run that failed before its first row, on a store it created, leaves nothing behind)."""
        tables = ("images", "results", "experiments", "claims")
        empty = discard_empty and not any(self.db.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in tables)
        self.db.close()
        if empty:
            for p in (self.path, self.path.with_name(self.path.name + "-journal")):
                p.unlink(missing_ok=True)

    def config(self) -> dict | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='config'").fetchone()
        return None if row is None else json.loads(row[0])

    def bind(self, config: EvalConfig) -> None:
        """Record the config, or check that it is the one the store was made with; and that its
        images are keyed by request identity of this id scheme (:func:`smug.evaluation.runner.image_key`)."""
        self._check_keys()
        mine = asdict(config)
        have = self.config()
        if have is None:
            with self.db:
                self.db.execute("INSERT INTO meta VALUES ('config', ?)", (json.dumps(mine),))
            return
        defaults = asdict(EvalConfig())
        have = {**{k: v for k, v in defaults.items() if k not in have}, **have}  # stores from older versions
        if have != mine:
            diff = {k: (have.get(k), v) for k, v in mine.items() if have.get(k) != v}
            raise ValueError(f"{self.path} was made with other settings {diff} (stored, given): use another --db")

    def _check_keys(self) -> None:
        """Refuse to add rows to a store whose images are keyed another way (an older smug: by path);
        it stays readable (``smug evaluate report``), and a new store recomputes its images."""
        from smug.pipeline.identity import SCHEME  # here: the CLI's parser reads this module's EvalConfig

        row = self.db.execute("SELECT value FROM meta WHERE key='id_scheme'").fetchone()
        scheme = 1 if row is None else int(row[0])
        if scheme == SCHEME:
            return
        named = {im["image"]: im["name"] for im in self.images()}
        keys = [r[0] for r in self.db.execute("SELECT DISTINCT image FROM results ORDER BY image")]
        names = sorted({named.get(k) or k for k in [*named, *keys]})
        if not names:
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('id_scheme', ?)", (str(SCHEME),))
            return
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        raise ValueError(f"{self.path} was written by an older smug (images keyed by id scheme {scheme}, this smug "
                         f"keys them by request identity, scheme {SCHEME}); it stays readable (smug evaluate "
                         f"report) but is not reused: give another --db, where this run recomputes its "
                         f"{len(names)} images ({shown})")

    def done(self, image: str) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT method FROM results WHERE image=?", (image,))}

    def has_image(self, image: str) -> bool:
        return self.db.execute("SELECT 1 FROM images WHERE image=?", (image,)).fetchone() is not None

    def put_image(self, image: str, name: str, target: int, target_name: str, confidence: float, picture: bytes):
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO images VALUES (?,?,?,?,?,?)",
                            (image, name, target, target_name, confidence, picture))

    def put_result(self, image: str, method: str, row: dict) -> None:
        with self.db:
            self.db.execute(
                f"INSERT OR REPLACE INTO results (image, method, {', '.join(RESULT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * (len(RESULT_COLUMNS) + 2))})",
                [image, method] + [row.get(c) for c in RESULT_COLUMNS])

    # ---- claims: two runs on one store never compute the same (image, method) ------------------
    def claim(self, image: str, methods: list[str]) -> list[str]:
        """Claim the ``methods`` of ``image`` for this run; returns those it got (not done, not claimed by
        another live run).  A claim of a process that is gone (same host) is taken over; claims of
        other hosts are honoured until released."""
        got = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            done = self.done(image)
            for m in methods:
                if m in done:
                    continue
                row = self.db.execute("SELECT owner, host, pid FROM claims WHERE image=? AND method=?",
                                      (image, m)).fetchone()
                if row is not None and row[0] != self.owner and _alive(row[1], row[2]):
                    continue
                self.db.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?,?)",
                                (image, m, self.owner, socket.gethostname(), os.getpid()))
                got.append(m)
        return got

    def release_claims(self, image: str | None = None, methods: tuple[str, ...] | list[str] = ()) -> None:
        """Drop this run's claims: of ``methods`` of ``image``, or all of them."""
        with self.db:
            if image is None:
                self.db.execute("DELETE FROM claims WHERE owner=?", (self.owner,))
            else:
                self.db.executemany("DELETE FROM claims WHERE owner=? AND image=? AND method=?",
                                    [(self.owner, image, m) for m in methods])

    def put_experiment(self, experiment: str, image: str, values: dict[str, float]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO experiments VALUES (?,?,?,?)",
                                [(experiment, image, k, float(v)) for k, v in values.items()])

    def experiment(self, experiment: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for image, key, value in self.db.execute(
                "SELECT image, key, value FROM experiments WHERE experiment=? ORDER BY image", (experiment,)):
            out.setdefault(image, {})[key] = value
        return out

    def images(self) -> list[dict]:
        cur = self.db.execute("SELECT image, name, target, target_name, confidence, picture FROM images ORDER BY name")
        return [dict(zip(("image", "name", "target", "target_name", "confidence", "picture"), r)) for r in cur]

    def results(self) -> list[dict]:
        """Every row as a dict; ``keeps_class`` as True/False/None (SQLite keeps 1/0/NULL)."""
        cur = self.db.execute("SELECT * FROM results ORDER BY image, method")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur]
        for r in rows:
            r["keeps_class"] = None if r["keeps_class"] is None else bool(r["keeps_class"])
        return rows
