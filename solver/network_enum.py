"""Exact optimum of a whole-network mask problem by exhaustive search over small masks.

MNIST minimal masks have 0-4 pixels, and only pixels that differ from the masked-out
value matter (an entry equal to its baseline is the same on or off: an exactly
irrelevant variable).  So all masks of size 0, 1, 2, ... over the relevant variables
are few enough to evaluate in float64 batches with a rigorous error bound: a mask
whose float margin fails by more than the bound fails exactly; any other is checked
in exact arithmetic.  The first size with an exactly valid mask is the optimum, and
every smaller size was refuted mask by mask: an exact proof.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Callable, Iterable
from math import comb

import numpy as np
import scipy.sparse as sp

from smug.common import U, gamma
from smug.ir import NetworkProblem
from smug.solver.certificate import certify_network
from smug.solver.network_bounds import LayerBounds



ENUM_MEMORY_MB = 4  # working arrays of one batch of masks: within a core's cache (4x faster than 256 MB)
QUIET_PREFIXES = 4096  # prefixes between two deadline checks when the margin lines drop every mask


@dataclass(frozen=True)
class EnumResult:
    mask: np.ndarray | None  # the optimum (None: not reached)
    lower_bound: int  # every mask smaller than this was refuted exactly
    masks_checked: int
    exact_checks: int
    seconds: float
    stopped: str | None = None  # why it stopped early: "deadline" or "memory"
    refuted_by_lines: int = 0  # sizes refuted at once by the margin lines
    search_seconds: float = 0.0  # of ``seconds``, those spent on masks (each size's set-up left out)


def relevant_variables(problem: NetworkProblem) -> np.ndarray:
    """Variables owning an input that differs from its baseline and has a weight."""
    W = problem.layers[0].weight.tocsc()
    has_weight = np.diff(W.indptr) > 0
    differs = (problem.x != problem.baseline) & has_weight & (problem.group >= 0)
    return np.unique(problem.group[differs])


def masks_up_to(n: int, size: int) -> int:
    return sum(comb(n, k) for k in range(size + 1))


def mask_cost(problem: NetworkProblem, size: int) -> int:
    """Floating-point operations to evaluate one mask of ``size`` variables."""
    first = problem.layers[0].weight.shape[0]
    return first * (size + 1) + sum(layer.weight.nnz + layer.weight.shape[0] for layer in problem.layers[1:])


def batch_size(problem: NetworkProblem, size: int, memory_mb: float) -> int:
    """Masks per batch so that the batch's working arrays (about three float64 copies of the
    widest layer per mask) stay within ``memory_mb``."""
    widest = max(layer.weight.shape[0] for layer in problem.layers)
    per_mask = 8 * (3 * widest + 2 * size + problem.n_classes * 2)
    return int(max(1, min(100_000, memory_mb * 2**20 // per_mask)))


Layer = tuple[sp.csr_matrix | None, np.ndarray, bool]  # (weight, bias, relu)


def forward_columns(layers: Iterable[Layer], h: np.ndarray) -> np.ndarray:
    """Columns ``h`` (one per mask) through ``layers`` in float64, in place where it can; a layer
    whose weight is None takes ``h`` as its pre-activations already (the enumeration's first)."""
    for weight, bias, relu in layers:
        if weight is not None:
            h = weight @ h
            h += bias[:, None]
        if relu:
            np.maximum(h, 0.0, out=h)
    return h


def class_margins(logits: np.ndarray, target: int) -> np.ndarray:
    """Target logit minus each class's, one column per mask (``inf`` on the target's row)."""
    margins = logits[target][None, :] - logits
    margins[target] = np.inf
    return margins


def refuted_sizes(lines: tuple[np.ndarray, np.ndarray], columns: np.ndarray, delta: float, max_size: int) -> int:
    """The smallest size ``k <= max_size + 1`` that the margin lines do not refute for every mask
    of at most ``k`` variables (``columns``: the variables a mask may use)."""
    G, d = lines
    if G.shape[0] == 0:
        return 0
    top = -np.sort(-np.maximum(G[:, columns], 0.0), axis=1)
    best = d[:, None] + np.concatenate([np.zeros((len(d), 1)), np.cumsum(top, axis=1)], axis=1)
    for k in range(min(max_size, len(columns)) + 1):
        if not np.any(best[:, k] <= delta):
            return k
    return max_size + 1


Sized = Callable[[int], tuple[list[LayerBounds], tuple[np.ndarray, np.ndarray] | None]]


def enumerate_optimum(problem: NetworkProblem, sized: Sized, max_size: int, deadline: float,
                      lower_bound: int = 0, memory_mb: float = ENUM_MEMORY_MB,
                      order: np.ndarray | None = None) -> EnumResult:
    """Search sizes ``lower_bound .. max_size`` in order; stop at the first exactly valid mask.

    Within a size, masks come in the lexicographic order of ``order`` (the relevant variables,
    most promising first: a valid mask is then met early; default: by index).
    ``sized(k)`` gives bounds valid for every mask of at most ``k`` variables and, optionally,
    margin lines (``G, d`` of :func:`~smug.solver.network_bounds.margin_lines`): they refute
    whole sizes at once and filter each batch before its forward pass.  Batches are sized to
    ``memory_mb``; running out of memory anyway stops the search with the sizes refuted so
    far (``stopped == "memory"``)."""
    t0 = time.perf_counter()
    counts = {"checked": 0, "exact": 0, "lb": lower_bound, "skipped": 0, "searched": 0.0, "since": None}
    try:
        R = relevant_variables(problem) if order is None else np.asarray(order)
        return _search(problem, sized, R, max_size, deadline, memory_mb, counts, t0)
    except MemoryError:
        return EnumResult(None, counts["lb"], counts["checked"], counts["exact"], time.perf_counter() - t0,
                          "memory", counts["skipped"], _searched(counts))


def _searched(counts: dict) -> float:
    """Seconds spent on masks so far, the running size's included."""
    return counts["searched"] + (time.perf_counter() - counts["since"] if counts["since"] is not None else 0.0)


def _search(problem, sized: Sized, R, max_size, deadline, memory_mb, counts, t0) -> EnumResult:
    first = problem.layers[0]
    W1 = first.weight.tocsr()
    grouped = problem.group >= 0
    fixed = np.where(grouped, problem.baseline, problem.x)
    c = W1 @ fixed + first.bias
    cols = np.flatnonzero(grouped)
    P = sp.csr_matrix(((problem.x - problem.baseline)[cols], (cols, problem.group[cols])),
                      shape=(W1.shape[1], problem.n_vars))
    AT = sp.csr_matrix((W1 @ P)[:, R].T).toarray()  # row j: the change when variable R[j] is switched on
    amax = np.maximum(abs(problem.x), abs(problem.baseline))
    n_in = int(np.diff(W1.indptr).max(initial=0))
    base_err = abs(W1) @ amax + abs(first.bias)
    t = problem.target

    def result(mask, stopped=None) -> EnumResult:
        return EnumResult(mask, counts["lb"], counts["checked"], counts["exact"], time.perf_counter() - t0, stopped,
                          counts["skipped"], _searched(counts))

    for k in range(counts["lb"], max_size + 1):
        if time.perf_counter() > deadline:
            return result(None, "deadline")
        bounds, lines = sized(k)
        if lines is not None and refuted_sizes(lines, R, problem.delta, k) > k:
            counts["lb"], counts["skipped"] = k + 1, counts["skipped"] + 1  # no mask of size <= k keeps the class
            continue
        G = np.ascontiguousarray(lines[0][:, R].T) if lines is not None else None  # (len(R), n_others)
        margin_err = _margin_error(problem, bounds, base_err, n_in, k)
        upper_lines = None if lines is None or not k else (lines[1], G)
        AT_k, layers_k = _varying_units(problem, c, AT, bounds)
        constant = layers_k[0][1]  # the first layer's, over its varying units
        counts["since"] = time.perf_counter()
        for idx, h in _batches(constant, AT_k, k, batch_size(problem, k, memory_mb), upper_lines, problem.delta, counts):
            if time.perf_counter() > deadline:
                return result(None, "deadline")
            if h is None:
                continue
            margins = class_margins(forward_columns(layers_k, h), t)
            maybe = np.all(margins + margin_err[:, None] > problem.delta, axis=0)
            for row in np.flatnonzero(maybe):
                counts["exact"] += 1
                mask = np.zeros(problem.n_vars, dtype=bool)
                mask[R[idx[row]]] = True
                if certify_network(problem, mask).valid:
                    return result(mask)
        counts["searched"], counts["since"] = _searched(counts), None
        counts["lb"] = k + 1
    return result(None)


def _margin_error(problem: NetworkProblem, bounds: list[LayerBounds], base_err: np.ndarray, n_in: int,
                  k: int) -> np.ndarray:
    """A rigorous bound of how far a float margin of a mask of ``k`` variables (as the batches
    compute it) can lie from the exact one, per class (Higham's forward error analysis, layer by
    layer: ``|fl(h_l) - h_l| <= |W| E_{l-1} + gamma_{n+2} (|W| (H_{l-1} + E_{l-1}) + |b|)``, with
    ``H`` the rigorous bounds of the exact values, so ``H + E`` bounds the float ones).  Unknown
    (NaN) entries become infinite: such a margin is always checked exactly."""
    with np.errstate(over="ignore", invalid="ignore"):
        E = gamma(n_in + k + 4) * (2 * k + 3) * base_err + (n_in + k + 4) * 2.0**-1070
        for layer, b in zip(problem.layers[1:], bounds[:-1]):
            H = np.maximum(np.maximum(abs(b.lower), abs(b.upper)), 0)
            Wa = abs(layer.weight)
            n = int(np.diff(layer.weight.tocsr().indptr).max(initial=0))
            E = Wa @ E + gamma(n + 2) * (Wa @ (H + E) + abs(layer.bias)) + (n + 2) * 2.0**-1070
        out_abs = np.maximum(abs(bounds[-1].lower), abs(bounds[-1].upper)) + E
        t = problem.target
        err = (E[t] + E + 2 * U * (out_abs[t] + out_abs)) * (1 + 1e-6) + 1e-300
    return np.where(np.isnan(err), np.inf, err)


def _varying_units(problem: NetworkProblem, c: np.ndarray, AT: np.ndarray, bounds: list[LayerBounds]
                   ) -> tuple[np.ndarray, list[Layer]]:
    """The network restricted to the units that can change between the masks ``bounds`` hold for.

    A unit no relevant variable reaches keeps its empty-mask value, folded into the next layer's
    bias; a ReLU whose input is never positive is 0 and dropped; every logit is kept.  Returns the
    first layer's per-variable rows over its kept units, and the layers as ``(weight, bias,
    relu)``: the first one's weight is None and its bias the first layer's constant.  The
    arithmetic is the full network's less exact zeros and with constants summed first, which
    the caller's error bound covers."""
    h = problem.masked_input(np.zeros(problem.n_vars, bool))
    last = len(problem.layers) - 1
    layers: list[Layer] = []
    prev = first = np.zeros(0, bool)
    for li, (layer, b) in enumerate(zip(problem.layers, bounds)):
        W = layer.weight.tocsr()
        z = W @ h + layer.bias
        vary = np.abs(AT).sum(axis=0) > 0 if li == 0 else (abs(W) @ prev.astype(np.float64)) > 0
        if layer.relu:
            vary &= b.upper > 0
        if li == last:
            vary[:] = True
        if li == 0:
            first = vary
            layers.append((None, c[vary], layer.relu))
        else:
            rows = W[vary]
            layers.append((sp.csr_matrix(rows[:, prev]), layer.bias[vary] + rows[:, ~prev] @ h[~prev], layer.relu))
        h = np.where(b.upper > 0, np.maximum(z, 0.0), 0.0) if layer.relu else z
        prev = vary
    return np.ascontiguousarray(AT[:, first]), layers


def _batches(c: np.ndarray, AT: np.ndarray, k: int, chunk: int, lines: tuple[np.ndarray, np.ndarray] | None,
             delta: float, counts: dict):
    """Every mask of ``k`` of the rows of ``AT`` (one per variable) once, in lexicographic order, as
    batches ``(idx, h)``: ``idx`` the masks (rows of variable indices) and ``h`` their first-layer
    pre-activations, one column per mask, each summed in the order ``c + AT[i0] + ... + AT[ik]``.

    Masks sharing their first ``k - 1`` variables (a prefix) are built from the prefix's sum and a
    contiguous slice of ``AT``.  With ``lines = (d, G)`` (margin upper lines, ``G`` one row per
    variable), a mask is dropped when some margin's line is at most ``delta``, a whole prefix when
    no extension can pass.  ``(None, None)`` comes every ``QUIET_PREFIXES`` prefixes that filled
    no batch, so that the caller can watch its deadline."""
    n, width = AT.shape
    if k == 0:
        counts["checked"] += 1
        yield np.zeros((1, 0), np.int64), c[:, None].copy()
        return
    h = np.empty((chunk, width))  # one row per mask while building, transposed when full
    rows: list[np.ndarray] = []
    taken = quiet = 0
    for prefix in itertools.combinations(range(n - 1), k - 1) if k > 1 else [()]:
        quiet += 1
        if quiet == QUIET_PREFIXES:
            quiet = 0
            yield None, None
        first = prefix[-1] + 1 if prefix else 0
        counts["checked"] += n - first
        ext = np.arange(first, n)
        if lines is not None:
            d, G = lines
            upper = d + G[list(prefix)].sum(axis=0) if prefix else d
            ext = ext[np.all(upper[None, :] + G[first:] > delta, axis=1)]
            if not len(ext):
                continue
        base = c.copy()
        for i in prefix:
            base += AT[i]
        while len(ext):
            m = min(len(ext), chunk - taken)
            part, ext = ext[:m], ext[m:]
            np.add(base[None, :], AT[part[0]:part[-1] + 1] if part[-1] - part[0] == m - 1 else AT[part],
                   out=h[taken:taken + m])
            rows.append(np.column_stack([np.broadcast_to(np.array(prefix, np.int64), (m, k - 1)), part]))
            taken += m
            if taken == chunk:
                quiet = 0
                yield np.concatenate(rows), h.T.copy()
                rows, taken = [], 0
    if taken:
        yield np.concatenate(rows), h[:taken].T.copy()
