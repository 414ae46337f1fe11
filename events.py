"""Progress events: one vocabulary for everything that reports a run's progress and everything that shows it.

Producers: the pipeline's stages (:class:`Stage`), a baseline's long loops (:class:`WorkDone`, through
``smug.baselines.budget``), the solvers and the isolation runner (:class:`Improved`, each better verified
mask).  Consumers: the server's worker pool and gRPC stream, the CLI's progress line and the gRPC client,
which yields the same classes.  Each is a frozen dataclass that prints as one short line, so
``run(request, progress=print)`` shows no arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Union

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Stage:
    """A stage (load, encode, ig, solve, ...) started or finished, ``seconds`` after the run began
    (from a server: after the request arrived)."""

    stage: str
    finished: bool = False
    seconds: float = 0.0

    def __str__(self) -> str:
        return f"{self.stage} {'finished' if self.finished else 'started'} at {self.seconds:.2f} s"


@dataclass(frozen=True)
class WorkDone:
    """A long loop's progress inside ``stage``: ``done`` of ``total`` units of ``method``'s work."""

    stage: str
    method: str
    done: int
    total: int

    def __str__(self) -> str:
        return f"{self.stage}: {self.method} {self.done}/{self.total}"


@dataclass(frozen=True)
class Improved:
    """A smaller verified mask or a larger proven lower bound, ``seconds`` into the solve; ``mask``
    (bool per mask variable) is the verified mask, ``backend`` the solver that found it (when known)."""

    size: int
    lower_bound: int
    seconds: float
    mask: np.ndarray | None = field(default=None, repr=False, compare=False)
    backend: str = ""

    def __str__(self) -> str:
        by = f", {self.backend}" if self.backend else ""
        return f"mask {self.size}, proven >= {self.lower_bound} ({self.seconds:.1f} s{by})"


Event = Union[Stage, WorkDone, Improved]
Progress = Callable[[Event], None]
