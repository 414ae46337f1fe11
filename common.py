"""Small facts every layer shares: softmax, the cache folder, atomic files, JSON of numpy values,
a silent HiGHS, float64's rounding constants.

Nothing here imports another smug module, so any layer may import it.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax over ``axis`` (float64)."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def cache_dir() -> Path:
    """The user cache folder (``$SMUG_CACHE``, else ``$XDG_CACHE_HOME/smug`` or ``~/.cache/smug``), created."""
    root = os.environ.get("SMUG_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "smug"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def proc_status_bytes(field: str, pid: int | str = "self") -> int:
    """A size from ``/proc/<pid>/status`` in bytes (``VmRSS``, ``VmSize``, ...); 0 when the process
    or the field is not there (it ended, or this is not Linux)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file of its own (one per process and thread,
    so two threads or processes writing one path never share it), so a reader never sees half a
    file; a failed write leaves no temporary file.  The one place smug writes bytes atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_files(out_dir: str | os.PathLike, files: dict[str, bytes]) -> list[Path]:
    """Each ``name -> bytes`` of ``files`` written atomically into ``out_dir``."""
    return [write_atomic(Path(out_dir) / name, data) for name, data in files.items()]


def jsonable(value):
    """``json.dumps(default=...)`` for numpy scalars and arrays."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


_BANNER = threading.Lock()
_banner_shown = False  # HiGHS prints its banner once per process, at the first construction


def quiet_highs():
    """A ``highspy.Highs`` that prints nothing: logging off, and the banner HiGHS writes to the
    process's standard output (file descriptor 1, past Python's ``sys.stdout``) at its first
    construction sent to ``/dev/null`` (it would break JSON-line logs and notebook cells)."""
    import highspy

    global _banner_shown
    with _BANNER:
        if _banner_shown:
            h = highspy.Highs()
        else:
            sys.stdout.flush()
            saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, 1)
                h = highspy.Highs()
            finally:
                os.dup2(saved, 1)
                os.close(saved)
                os.close(devnull)
            _banner_shown = True
    h.setOptionValue("output_flag", False)
    return h


# ---- float64 rounding (Higham, *Accuracy and Stability of Numerical Algorithms*, Sec. 3.1) ----
U = 2.0**-53  # unit roundoff of float64 (round to nearest)
UNDERFLOW = 2.0**-1074  # the absolute error of one product that underflows (smallest subnormal)


def gamma(n: int) -> float:
    """Higham's ``gamma_n = n u / (1 - n u)``: a float sum of ``n`` products is off by at most
    ``gamma_n`` times the sum of their magnitudes (no underflow); infinite when ``n u >= 1/2``."""
    if n * U >= 0.5:
        return float("inf")
    return n * U / (1 - n * U)
