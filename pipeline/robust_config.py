"""The robust method's parameters (issue 30, :mod:`smug.pipeline.robust`): checked when a request
is built, before any model or solver library loads."""

from __future__ import annotations

import math
from dataclasses import dataclass

MODES = ("subset", "cardinality")


@dataclass(frozen=True)
class RobustConfig:
    """``epsilon``: L-inf radius (``inf``: the whole input domain); ``mode``: ``subset`` (fast,
    subset-minimal) or ``cardinality`` (minimum size, anytime lower bound); ``window``: k x k
    pixel blocks; ``domain``: the range every input entry stays in."""

    epsilon: float = 0.05
    mode: str = "subset"
    window: int = 1
    domain: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and (self.epsilon >= 0) and not math.isnan(self.epsilon)):
            raise ValueError(f"epsilon must be a number >= 0 or inf, got {self.epsilon!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not (isinstance(self.window, int) and self.window >= 1):
            raise ValueError(f"window must be an integer >= 1, got {self.window!r}")
        lo, hi = self.domain
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"domain must be finite with lo <= hi, got {self.domain!r}")
