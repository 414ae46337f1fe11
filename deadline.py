"""One deadline object, passed down from the front end to the solver's child process.

A :class:`Deadline` is an absolute wall-clock time (``time.time()``), so it means the
same in every process of a request: the CLI, a server worker, a farm task and the
isolated solve all read the one the front end made.  It lives in the foundation, so the
baselines' budget, the solver's runner, the server's calls and its worker pool hold this one
type instead of floats of their own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


DEFAULT_TIMEOUT = 60.0  # seconds a solve may take when nobody names a limit (requests and the solver alike)


class DeadlineExceeded(Exception):
    """The deadline passed before a stage could start; nothing was solved."""


@dataclass(frozen=True)
class Deadline:
    """The wall-clock time by which an answer is due (``math.inf``: none)."""

    at: float = math.inf

    @classmethod
    def after(cls, seconds: float | None) -> "Deadline":
        """``seconds`` from now (None: no deadline)."""
        return cls(math.inf if seconds is None else time.time() + float(seconds))

    @property
    def bounded(self) -> bool:
        """Whether there is a deadline at all."""
        return math.isfinite(self.at)

    def minus(self, seconds: float) -> "Deadline":
        """``seconds`` earlier (a margin kept for the answer's way back)."""
        return Deadline(self.at - float(seconds))

    def remaining(self) -> float:
        """Seconds left (never negative; ``math.inf`` without a deadline)."""
        return max(0.0, self.at - time.time())

    def expired(self) -> bool:
        return time.time() >= self.at

    def earlier(self, other: "Deadline | None") -> "Deadline":
        """The sooner of this deadline and ``other``."""
        return self if other is None or self.at <= other.at else other

    def budget(self, limit: float) -> float:
        """Seconds a stage may take: ``limit`` or what is left, whichever is less."""
        return min(float(limit), self.remaining())

    def check(self, stage: str) -> None:
        """Raise :class:`DeadlineExceeded` if no time is left to start ``stage``."""
        if self.expired():
            raise DeadlineExceeded(f"the deadline passed before the {stage} stage could start")
