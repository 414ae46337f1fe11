"""The time budget and progress channel of one baseline call.

:func:`~smug.baselines.attribution.attribute` sets a :class:`Budget` (a :class:`~smug.deadline.Deadline`
and a progress callback) for the duration of the call; the methods with long
loops (SIS, extremal perturbation, SFL, RISE, occlusion) read it through :func:`current`, report
``done / total`` work units (:class:`~smug.events.WorkDone`) and stop at the deadline with what they have, saying so in their
info (``stopped_at_deadline``).  Without a budget nothing is reported and nothing stops early.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from smug.deadline import Deadline
from smug.events import Progress, WorkDone


@dataclass(frozen=True)
class Budget:
    """When the call's answer is due (``Deadline()``: never) and where progress goes."""

    deadline: Deadline = field(default_factory=Deadline)
    progress: Progress | None = None
    every: float = 0.5  # seconds between two progress events of one loop

    def expired(self) -> bool:
        return self.deadline.expired()

    def report(self, method: str, done: int, total: int) -> None:
        """One progress event: ``WorkDone("attribute", method, done, total)``."""
        if self.progress is not None:
            self.progress(WorkDone("attribute", method, int(done), int(total)))


_CURRENT: ContextVar[Budget] = ContextVar("smug_baseline_budget", default=Budget())


def current() -> Budget:
    """The budget of the baseline call in progress (an unlimited one outside a call)."""
    return _CURRENT.get()


@contextmanager
def budget(deadline: Deadline | None = None, progress: Progress | None = None) -> Iterator[Budget]:
    """Make ``Budget(deadline, progress)`` current inside the ``with`` block (None: no deadline)."""
    b = Budget(deadline or Deadline(), progress)
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
