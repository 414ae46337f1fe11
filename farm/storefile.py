"""Opening a farm store's SQLite file so that it never lies: every fault is one :class:`StoreError`.

Before a byte is written, :func:`connect` checks that ``--db`` names a regular file that is
an SQLite database holding a farm store (or no file at all, for a new store), that the
file and its folder can be written (a writer needs both: the WAL journal lives beside
the file), and that SQLite's ``PRAGMA quick_check`` finds every page intact.  Readers
(``farm status``, ``farm export``) open the file read-only, on a read-only file system
too (as an immutable file when no journal waits beside it).

Why ``quick_check`` (and not a checksum per row): it reads every page once and checks
each b-tree, record and overflow chain, so a damaged page (4 KB overwritten in the
middle of a 30-job store: "invalid page number") or a truncated file is found before a
count is printed or a job skipped; on a 10,000-job store of 157 MB it took 0.25 s with
the file in the page cache, against 0.42 s to read and hash every row, and it needs no
change of schema.  What it cannot see, a byte changed inside a stored value with the
page's structure intact, is caught on reading: the arrays are a zip archive with a
CRC-32 per array, and a result that does not parse as JSON is an error.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

MAGIC = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database


class StoreError(ValueError):
    """The store cannot be used as asked: missing, not a farm store, damaged, read-only or its disk full."""


def connect(path: Path, create: bool, schema: str) -> sqlite3.Connection:
    """An open, checked connection to the store at ``path``; ``create``: a writer, which may make a
    new store (``schema`` is run only for a file it creates); else a read-only reader."""
    exists = _check_file(path, create)
    if not create:
        db = _checked(_open_readonly(path), path)
        _check_farm(db, path)
        return db
    if exists:
        _check_writable(path)
        db = _checked(_open(f"file:{quote(str(path))}?mode=rw", path), path)
        _check_farm(db, path)
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {path}: {exc.strerror}") from None
        _check_writable(path)
        db = _open(f"file:{quote(str(path))}?mode=rwc", path)
    try:
        with writing(path):
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            if not exists:
                with db:
                    db.executescript(schema)
    except StoreError:
        db.close()
        if not exists:  # a half-made store would read as a foreign database: leave nothing behind
            for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
                path.with_name(name).unlink(missing_ok=True)
        raise
    return db


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn SQLite's failures while writing the store (a full disk above all) into a :class:`StoreError`."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "full" in str(exc):
            raise StoreError(f"the disk holding {path} is full; the jobs recorded so far are kept: free space and "
                             "run again to resume") from None
        if "readonly" in str(exc).replace(" ", "").replace("-", ""):
            raise StoreError(f"{path} is read-only; farm status and export can still read it") from None
        raise StoreError(f"cannot write {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(_damaged(path, str(exc))) from None


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn SQLite's failures while reading the store (damage ``quick_check`` did not see) into a
    :class:`StoreError`."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise StoreError(_damaged(path, str(exc))) from None


def _check_file(path: Path, create: bool) -> bool:
    """Whether a store file exists at ``path``; a :class:`StoreError` for anything else found there."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a farm store (--db names the store's file)")
    if not path.exists():
        if not create:
            raise StoreError(f"no farm store at {path}")
        return False
    if not path.is_file():
        raise StoreError(f"{path} is not a regular file, so not a farm store")
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC))
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None
    if not head and create:
        return False  # an empty file (made by touch or mktemp): a new store
    if head != MAGIC:
        what = "empty" if not head else "not an SQLite database"
        raise StoreError(f"{path} is not a farm store ({what}); give a new file name to start a store")
    return True


def _check_writable(path: Path) -> None:
    """A writer needs the file (when there is one) and its folder (the journal) writable."""
    folder = path.parent
    for target in ((path, folder) if path.exists() else (folder,)):
        if not os.access(target, os.W_OK):
            why = "on a read-only file system" if _read_only_fs(folder) else "not writable"
            raise StoreError(f"{target} is {why}; a run writes its store there (farm status and export only read)")


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _open(uri: str, path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(uri, uri=True, timeout=60.0)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from None


def _open_readonly(path: Path) -> sqlite3.Connection:
    """For reading only.  Where the file and its folder can be written, as SQLite's own readers do (the
    last connection to close removes the journal files it made); else read-only, and on a read-only
    file system (where no WAL index can be made beside the file) as an immutable file, which is exact
    only when no journal of unfinished writes lies beside it."""
    uri = f"file:{quote(str(path))}"
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
        return _open(f"{uri}?mode=rw", path)
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and path.with_name(path.name + "-shm").exists():
        return _open(f"{uri}?mode=ro", path)
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(f"{path} has unfinished writes in {wal.name} and its folder is read-only: copy both "
                         "files to a writable folder to read them")
    return _open(f"{uri}?mode=ro&immutable=1", path)


def _checked(db: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """``db`` once ``PRAGMA quick_check`` found every page intact (else closed, and a StoreError)."""
    try:
        problems = [r[0] for r in db.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreError(_damaged(path, str(exc))) from None
    if problems != ["ok"]:
        db.close()
        first = problems[0].replace("*** in database main ***", "").strip().splitlines()[0]
        raise StoreError(_damaged(path, f"{len(problems)} problem(s), the first: {first}"))
    return db


def _check_farm(db: sqlite3.Connection, path: Path) -> None:
    """An existing SQLite file must hold a farm store: nothing is added to another program's database."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not {"meta", "jobs"} <= tables:
        db.close()
        raise StoreError(f"{path} is an SQLite database but not a farm store; give a new file name to start one")


def _damaged(path: Path, detail: str) -> str:
    return (f"the farm store {path} is damaged ({detail}); nothing was read from it or written to it: export what "
            "it still holds with sqlite3's .recover, or start a new store")
