"""Progress events and timings shared by every method of the pipeline."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator

Progress = Callable[[dict], None]


class Stages:
    """Announces stages (``{"event": "stage", "stage", "state", "t"}``) and times them."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.t0 = time.perf_counter()

    def emit(self, ev: dict) -> None:
        if self.progress is not None:
            self.progress(ev)

    @contextmanager
    def stage(self, name: str, **extra) -> Iterator[None]:
        self.emit({"event": "stage", "stage": name, "state": "started", "t": time.time(), **extra})
        t = time.perf_counter()
        yield
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t, 4)
        self.emit({"event": "stage", "stage": name, "state": "finished", "t": time.time()})

    def finish(self, solver_timings: dict[str, float] | None = None) -> dict[str, float]:
        """Every stage's seconds, the solver's own breakdown, and the total."""
        out = dict(self.timings)
        out.update({f"solve_{k}": round(v, 4) for k, v in (solver_timings or {}).items()})
        out["total"] = round(time.perf_counter() - self.t0, 4)
        return out
