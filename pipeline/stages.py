"""Stage events (:class:`smug.events.Stage`) and timings shared by every method of the pipeline."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from smug.events import Event, Progress, Stage


class Stages:
    """Announces stages (a :class:`~smug.events.Stage` as each starts and finishes) and times them."""

    def __init__(self, progress: Progress | None):
        self.progress = progress
        self.timings: dict[str, float] = {}
        self.t0 = time.perf_counter()

    def emit(self, ev: Event) -> None:
        if self.progress is not None:
            self.progress(ev)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.emit(Stage(name, False, round(time.perf_counter() - self.t0, 4)))
        t = time.perf_counter()
        yield
        self.timings[name] = round(self.timings.get(name, 0.0) + time.perf_counter() - t, 4)
        self.emit(Stage(name, True, round(time.perf_counter() - self.t0, 4)))

    def finish(self, solver_timings: dict[str, float] | None = None) -> dict[str, float]:
        """Every stage's seconds, the solver's own breakdown, and the total."""
        out = dict(self.timings)
        out.update({f"solve_{k}": round(v, 4) for k, v in (solver_timings or {}).items()})
        out["total"] = round(time.perf_counter() - self.t0, 4)
        return out
