"""Statistical fault localisation (SFL) for DeepCover (paper 000, Sec. II-B; Sun et al. 2020).

Pure numpy: mutant masks, the per-element spectrum ``<a_ep, a_ef, a_np, a_nf>`` and
the four measures of paper 000, Eq. 5.  The model-calling part is
:func:`smug.baselines.perturbation.sfl`.

Spectrum.  Each mutant is a *test*; each input element (a pixel or a block of
pixels, shared over channels) is a program element that the test *executes* or
not; the test *passes* or *fails*.  ``a_ef`` counts the failing tests that
execute the element, ``a_nf`` the failing tests that do not, and so on.  Which
mutant events count as "executed" and "failing" is the caller's choice (see
``perturbation.sfl``'s ``convention``); this module only counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

MEASURES: tuple[str, ...] = ("ochiai", "tarantula", "zoltar", "wong2")

#: Zoltar's constant as printed in paper 000, Eq. 5c.  Zoltar's original
#: definition (Gonzalez 2007, Abreu et al. 2008) and DeepCover's code use 10000.
ZOLTAR_K = 1000.0


class SFLCounts(NamedTuple):
    """Per-element spectrum; four arrays of one shape (counts of tests)."""

    a_ep: np.ndarray  # executed, passing
    a_ef: np.ndarray  # executed, failing
    a_np: np.ndarray  # not executed, passing
    a_nf: np.ndarray  # not executed, failing


def sfl_counts(executed: np.ndarray, failing: np.ndarray) -> SFLCounts:
    """Spectrum of a test suite.

    ``executed``: (tests, *elements) booleans, element executed by the test;
    ``failing``: (tests,) booleans, the test fails."""
    e = np.asarray(executed, dtype=bool)
    f = np.asarray(failing, dtype=bool).reshape((-1,) + (1,) * (e.ndim - 1))
    if e.shape[0] != f.shape[0]:
        raise ValueError(f"{e.shape[0]} tests executed but {f.shape[0]} outcomes")
    count = lambda a: a.sum(axis=0, dtype=np.int64)  # noqa: E731
    return SFLCounts(a_ep=count(e & ~f), a_ef=count(e & f), a_np=count(~e & ~f), a_nf=count(~e & f))


def _as_counts(counts) -> SFLCounts:
    if isinstance(counts, SFLCounts):
        parts = counts
    elif isinstance(counts, Mapping):
        key = lambda k: k if k in counts else k[2:]  # noqa: E731  ('a_ep' or 'ep')
        parts = [counts[key(k)] for k in SFLCounts._fields]
    else:
        arr = np.asarray(counts)
        if arr.shape[-1] != 4:
            raise ValueError("counts must be SFLCounts, a mapping a_ep/a_ef/a_np/a_nf, or (..., 4) (ep, ef, np, nf)")
        parts = [arr[..., i] for i in range(4)]
    parts = [np.asarray(p, dtype=np.float64) for p in parts]
    if any(np.any(p < 0) for p in parts):
        raise ValueError("SFL counts must be non-negative")
    return SFLCounts(*np.broadcast_arrays(*parts))


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den == 0."""
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


def sfl_measures(counts, zoltar_k: float = ZOLTAR_K) -> dict[str, np.ndarray]:
    """The four measures of paper 000, Eq. 5, element-wise (higher = more suspicious).

    * Ochiai    ``a_ef / sqrt((a_ef + a_nf)(a_ef + a_ep))``                     (5a)
    * Tarantula ``F / (F + P)``, ``F = a_ef/(a_ef + a_nf)``, ``P = a_ep/(a_ep + a_np)``  (5b)
    * Zoltar    ``a_ef / (a_ef + a_nf + a_ep + k a_nf a_ep / a_ef)``, ``k = zoltar_k``  (5c)
    * Wong-II   ``a_ef - a_ep``                                                 (5d)

    Eq. 5b as printed has ``a_ef`` in the numerator of ``P``; that is a typo (P
    would not depend on passing tests) -- this is Tarantula as defined by Jones &
    Harrold and as DeepCover's code computes it.  A 0/0 (no test of a kind, or
    ``a_ef = 0`` in Zoltar) scores 0, as in DeepCover.

    ``counts``: :class:`SFLCounts`, a mapping with keys a_ep/a_ef/a_np/a_nf (or
    ep/ef/np/nf), or an array (..., 4) ordered (ep, ef, np, nf)."""
    c = _as_counts(counts)
    ep, ef, np_, nf = c.a_ep, c.a_ef, c.a_np, c.a_nf
    ochiai = _ratio(ef, np.sqrt((ef + nf) * (ef + ep)))
    fail_ratio = _ratio(ef, ef + nf)
    pass_ratio = _ratio(ep, ep + np_)
    tarantula = _ratio(fail_ratio, fail_ratio + pass_ratio)
    zoltar = _ratio(ef, ef + nf + ep + float(zoltar_k) * _ratio(nf * ep, ef))
    zoltar[ef == 0] = 0.0
    wong2 = ef - ep
    return {"ochiai": ochiai, "tarantula": tarantula, "zoltar": zoltar, "wong2": wong2}


def mutant_masks(
    rng: np.random.Generator, n_mutants: int, n_units: int, sigma: float | tuple[float, float]
) -> np.ndarray:
    """(n_mutants, n_units) booleans, True = masked.  Each mutant masks
    ``round(s * n_units)`` units chosen uniformly without replacement, where ``s``
    is ``sigma`` or, for a pair ``(lo, hi)``, drawn uniformly from it per mutant."""
    if np.ndim(sigma) == 0:
        lo = hi = float(sigma)
    else:
        lo, hi = (float(v) for v in sigma)
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"sigma must be a fraction in [0, 1] or a range lo <= hi in it, got {sigma}")
    frac = np.full(n_mutants, lo) if lo == hi else rng.uniform(lo, hi, n_mutants)
    k = np.rint(frac * n_units).astype(np.int64)
    keys = rng.random((n_mutants, n_units))
    # the k units with the smallest random keys (a partial sort per mutant; the same set
    # as "rank < k" after a full sort, without sorting)
    masked = np.zeros((n_mutants, n_units), dtype=bool)
    for row, (key, ki) in enumerate(zip(keys, k)):
        if ki >= n_units:
            masked[row] = True
        elif ki > 0:
            masked[row, np.argpartition(key, ki - 1)[:ki]] = True
    return masked
