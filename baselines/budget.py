"""The time budget and progress channel of one baseline call.

:func:`~smug.baselines.attribution.attribute` sets a :class:`Budget` (a deadline as an absolute
``time.time()`` and a progress callback) for the duration of the call; the methods with long
loops (SIS, extremal perturbation, SFL, RISE, occlusion) read it through :func:`current`, report
``done / total`` work units and stop at the deadline with what they have, saying so in their
info (``stopped_at_deadline``).  Without a budget nothing is reported and nothing stops early.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

Progress = Callable[[dict], None]


@dataclass(frozen=True)
class Budget:
    """When the call's answer is due (``math.inf``: never) and where progress goes."""

    deadline: float = math.inf
    progress: Progress | None = None
    every: float = 0.5  # seconds between two progress events of one loop

    def expired(self) -> bool:
        return time.time() >= self.deadline

    def report(self, method: str, done: int, total: int) -> None:
        """One progress event ``{"event": "stage", "stage": "attribute", "state": "progress", ...}``."""
        if self.progress is not None:
            self.progress({"event": "stage", "stage": "attribute", "state": "progress", "t": time.time(),
                           "method": method, "done": int(done), "total": int(total)})


_CURRENT: ContextVar[Budget] = ContextVar("smug_baseline_budget", default=Budget())


def current() -> Budget:
    """The budget of the baseline call in progress (an unlimited one outside a call)."""
    return _CURRENT.get()


@contextmanager
def budget(deadline: float | None = None, progress: Progress | None = None) -> Iterator[Budget]:
    """Make ``Budget(deadline, progress)`` current inside the ``with`` block."""
    b = Budget(math.inf if deadline is None else float(deadline), progress)
    token = _CURRENT.set(b)
    try:
        yield b
    finally:
        _CURRENT.reset(token)


class Ticker:
    """A loop's progress reporter: :meth:`tick` after each unit of work reports at most every
    ``budget.every`` seconds and returns False once the deadline has passed (stop there)."""

    def __init__(self, method: str, total: int, b: Budget | None = None):
        self.method, self.total, self.b = method, int(total), b or current()
        self.done, self.last, self.stopped = 0, 0.0, False

    def tick(self, n: int = 1) -> bool:
        self.done += int(n)
        now = time.monotonic()
        if now - self.last >= self.b.every or self.done >= self.total:
            self.last = now
            self.b.report(self.method, self.done, self.total)
        if self.done < self.total and self.b.expired():
            self.stopped = True
        return not self.stopped
