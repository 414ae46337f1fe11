"""Win% (paper 003 Sec. 5): the fraction of images on which a method's LSC is at least
as good as (equal or lower than) every other method's; ties count as a win for every
tied method, so the percentages need not sum to 100.  The interval is the binomial
proportion's normal approximation, ``z * sqrt(p (1 - p) / n)``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WinRate:
    """``wins`` of ``n`` images; ``percent`` = 100 wins / n; ``half_width`` of the
    normal-approximation interval, in percent."""

    method: str
    wins: int
    n: int
    percent: float
    half_width: float


def winners(scores: dict[str, float], tol: float = 0.0) -> set[str]:
    """The methods whose score is within ``tol`` of the lowest (NaN never wins)."""
    finite = {m: s for m, s in scores.items() if not math.isnan(s)}
    if not finite:
        return set()
    best = min(finite.values())
    return {m for m, s in finite.items() if s <= best + tol}


def win_rates(table: dict[str, dict[str, float]], methods: list[str] | None = None, z: float = 1.96,
              tol: float = 0.0) -> dict[str, WinRate]:
    """``table``: image -> {method: LSC}.  Only images that have a score for every one
    of ``methods`` (default: the methods of the first image) count."""
    if methods is None:
        methods = sorted(next(iter(table.values()), {}))
    rows = [r for r in table.values() if all(m in r for m in methods)]
    n = len(rows)
    wins = {m: 0 for m in methods}
    for r in rows:
        for m in winners({k: r[k] for k in methods}, tol):
            wins[m] += 1
    out = {}
    for m in methods:
        p = wins[m] / n if n else float("nan")
        hw = z * math.sqrt(p * (1 - p) / n) if n else float("nan")
        out[m] = WinRate(m, wins[m], n, 100.0 * p, 100.0 * hw)
    return out


def mean_interval(values, z: float = 1.96) -> tuple[float, float]:
    """Mean and the normal interval's half width ``z * sd / sqrt(n)`` (sample sd)."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan")
    sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return float(v.mean()), z * sd / math.sqrt(v.size)
