"""Sufficient Input Subsets (Carter, Mueller, Jain & Gifford, AISTATS 2019).

A *sufficient input subset* (SIS) of ``x`` for a score ``f`` and threshold ``tau`` is
a set ``S`` of features such that ``f(x_S) >= tau``, where ``x_S`` keeps the
features of ``S`` and masks every other one.  Carter et al. find one by

1. **backward selection**: starting from the features still available, repeatedly
   mask the feature whose masking keeps ``f`` highest, until none is left; the
   masking order ``R`` lists the least important feature first;
2. **the SIS** is the shortest suffix of ``R`` (the last-masked features) with
   ``f(x_suffix) >= tau``;
3. **the collection**: mask that SIS for good and start again from the remaining
   features, while they still reach ``tau`` together (``max_sets`` at most), which
   gives disjoint SISs in decreasing order of importance.

Because every step of (1) took the best feature to drop, removing any single
feature of an SIS brings ``f`` below ``tau`` (backward minimality) -- unless even the
empty set reaches ``tau`` (flagged ``empty_sufficient``; the SIS then has one feature).

Here ``f`` is the target's softmax probability (one batched onnxruntime run per
backward-selection step, over all candidate features; the suffix search of (2)
batched too).  A feature is a ``window x window`` pixel block shared over the
channels of an image input (default window 4), or one entry of a flat input (n,).
A masked entry takes ``fill``, default the model's zero, as in
:mod:`smug.baselines.perturbation`.  ``threshold`` is an absolute probability;
by default ``0.9 * f(x)`` (90 % of the model's probability of the target on the
unmasked input -- Carter et al. pick an absolute threshold per task; a relative one
works for any class and model).

Map: a pixel of the ``k``-th SIS (k = 1 for the first, most important) scores
``1 / k``; pixels in no SIS score 0 (paper 003 scores SIS words in (0, 1] by the
relevance of their set).  ``info['sets']`` lists each SIS's feature indices (block
index ``row * cols + col`` for images; last-masked first), ``info['masks']`` the
same sets as input-shaped (H, W) (or (n,)) booleans.  Backward selection costs
about ``n^2 / 2`` forward passes for ``n`` features: fine for MNIST blocks, slow for
fine blocks on ImageNet (paper 003: SIS "did not scale for ImageNet").

**Batched gradient SIS** (Carter, Jain, Mueller & Gifford, "Overinterpretation reveals
image classification model pathologies", NeurIPS 2021) replaces step (1) for large
inputs: the gradient of ``f`` with respect to a continuous keep mask over the features,
at the current mask, estimates how much masking each feature costs (first order:
``-df/dm_i``; here of ``log f``, whose gradient does not vanish where the softmax
saturates -- the same ranking to first order), and the ``per_step`` remaining features with the smallest gradient are
masked together; one forward and backward pass per step instead of one forward pass per
remaining feature.  ``selection="auto"`` (default) uses it above ``EXACT_LIMIT``
features and the exact backward selection below (small inputs; text always uses the
exact one).  Step (2) then scans suffix sizes coarse to fine (every ``per_step``-th
size, then the sizes of the bracket below the first that reaches ``tau``), each
checked by a real forward pass, so every returned SIS is sufficient; backward
minimality is only approximate for the gradient variant (``info['selection']``).

Every selection loop reports progress and stops at the call's deadline
(:mod:`smug.baselines.budget`): the features not yet ranked are appended unranked, the
suffix search still runs on that order, and ``info['stopped_at_deadline']`` is True
(the set found is sufficient, not backward-minimal).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from smug.baselines.attribution import Attribution, register
from smug.baselines.budget import Ticker, current
from smug.baselines.perturbation import Layout, chunks, target_probability
from smug.encoders.blocks import BlockGrid
from smug.models.runtime import OnnxModel

DEFAULT_BATCH = 256
DEFAULT_FRACTION = 0.9
EXACT_LIMIT = 1024  # features: exact backward selection up to here with selection="auto"
SELECTIONS = ("auto", "exact", "gradient")

#: f(keep) for a batch of keep masks over features (B, n) bool -> (B,) scores.
ScoreFn = Callable[[np.ndarray], np.ndarray]


class _Counted:
    """A score function that counts the inputs it evaluated."""

    def __init__(self, f: ScoreFn, batch: int):
        self.f, self.batch, self.n = f, batch, 0

    def __call__(self, keep: np.ndarray) -> np.ndarray:
        out = np.concatenate([np.asarray(self.f(keep[sl]), dtype=np.float64) for sl in chunks(len(keep), self.batch)])
        self.n += len(keep)
        return out


def backward_selection(f: ScoreFn, active: np.ndarray, ticker: Ticker | None = None) -> np.ndarray:
    """Carter et al.'s BackSelect: from the features ``active`` (n,) bool, repeatedly
    mask the one whose masking leaves ``f`` highest (first index on ties); returns
    the masking order (least important first).  When ``ticker`` says the deadline has
    passed, the features left are appended in index order (unranked)."""
    s = np.array(active, dtype=bool)
    order = []
    while s.any():
        cand = np.flatnonzero(s)
        keep = np.repeat(s[None], len(cand), axis=0)
        keep[np.arange(len(cand)), cand] = False
        best = cand[int(np.argmax(f(keep)))]
        s[best] = False
        order.append(best)
        if ticker is not None and not ticker.tick():
            order.extend(np.flatnonzero(s))
            break
    return np.asarray(order, dtype=np.int64)


#: d f / d keep for one keep mask over features (n,) bool -> (n,) gradient.
GradFn = Callable[[np.ndarray], np.ndarray]


def gradient_backward_selection(grad: GradFn, active: np.ndarray, per_step: int,
                                ticker: Ticker | None = None) -> np.ndarray:
    """Carter et al. (2021)'s batched gradient BackSelect: at the current keep mask, mask the
    ``per_step`` remaining features with the smallest ``df/dm`` (ties by index) together;
    returns the masking order (least important first).  At the deadline the features
    left are appended by their last gradient (unranked beyond that)."""
    s = np.array(active, dtype=bool)
    order: list[int] = []
    while s.any():
        cand = np.flatnonzero(s)
        g = np.asarray(grad(s), dtype=np.float64)[cand]
        ranked = cand[np.argsort(g, kind="stable")]
        drop = ranked[:per_step]
        s[drop] = False
        order.extend(drop.tolist())
        if ticker is not None and not ticker.tick(len(drop)):
            order.extend(ranked[per_step:].tolist())
            break
    return np.asarray(order, dtype=np.int64)


def find_sis(f: ScoreFn, order: np.ndarray, n: int, threshold: float, batch: int = DEFAULT_BATCH,
             stride: int = 1, expired: Callable[[], bool] | None = None):
    """Carter et al.'s FindSIS: the shortest non-empty suffix of the masking ``order``
    (features of an ``n``-feature input) with ``f >= threshold``, as
    ``(features, score)``, last-masked first; ``(None, None)`` when none reaches it.
    Suffixes are scored in batches of ``batch``, shortest first.  ``stride > 1``: coarse
    to fine -- sizes ``stride, 2 stride, ...`` (and the full order) first, then every
    size of the bracket below the first that reaches ``threshold``; the answer is the
    shortest among the sizes checked.  ``stride == 0`` (the deadline has passed): bisection over
    the sizes, a sufficient suffix in about ``log2 n`` passes.  ``expired()`` (the call's
    deadline) is asked before each batch of a scan; once it says so the scan ends and the
    sizes it left are bisected (the answer is sufficient, maybe not the shortest)."""
    rev = np.asarray(order)[::-1]
    late: list[int] = []  # the first size a scan left unchecked at the deadline

    def first_hit(sizes: np.ndarray, watch: bool = True):
        for sl in chunks(len(sizes), batch):
            part = sizes[sl]
            if watch and expired is not None and expired():
                late.append(int(part[0]))
                return None, None
            keep = np.zeros((len(part), n), dtype=bool)
            for row, k in enumerate(part):
                keep[row, rev[:k]] = True
            scores = f(keep)
            hit = np.flatnonzero(scores >= threshold)
            if len(hit):
                return int(part[hit[0]]), float(scores[hit[0]])
        return None, None

    def bisected(lo: int):
        """Sizes ``lo ..`` by bisection, a sufficient suffix in log2(n) passes (shortest if f is monotone)."""
        hi, best = len(rev), None
        while lo <= hi:
            mid = (lo + hi) // 2
            k, score = first_hit(np.array([mid]), watch=False)
            if k is not None:
                best, hi = (k, score), mid - 1
            else:
                lo = mid + 1
        return best if best is not None else first_hit(np.array([len(rev)]), watch=False)

    if stride == 0:  # out of time already
        k, score = bisected(1)
    elif stride <= 1:
        k, score = first_hit(np.arange(1, len(rev) + 1))
        if late:  # every size below late[0] failed
            k, score = bisected(late[0])
    else:
        coarse = np.unique(np.append(np.arange(stride, len(rev) + 1, stride), len(rev)))
        k, score = first_hit(coarse)
        if late:
            k, score = bisected(1)
        elif k is not None:
            lo = int(coarse[np.searchsorted(coarse, k) - 1]) + 1 if k > coarse[0] else 1
            fine, fine_score = first_hit(np.arange(lo, k))  # cut at the deadline: the coarse size stands
            if fine is not None:
                k, score = fine, fine_score
    if k is None:
        return None, None
    return rev[:k].copy(), score


def sis_collection(f: ScoreFn, n: int, threshold: float, max_sets: int | None = None,
                   batch: int = DEFAULT_BATCH, grad: GradFn | None = None, per_step: int = 1,
                   method: str = "sis") -> dict:
    """Disjoint SISs of an ``n``-feature input: SIS of the remaining features, mask it
    for good, repeat while the remaining features reach ``threshold`` (at most
    ``max_sets``; ``None``: no limit).  With ``grad`` the backward selection is the
    batched gradient one (``per_step`` features a step) and the suffix search strides by
    ``per_step``.  Returns ``sets``, ``scores`` (f of each SIS alone), ``orders`` (each
    backward-selection order), ``n_forward``, ``n_gradient`` and ``stopped_at_deadline``."""
    fc = _Counted(f, batch)
    grads = [0]

    def counted_grad(keep: np.ndarray) -> np.ndarray:
        grads[0] += 1
        return grad(keep)

    budget = current()

    def expired() -> bool:  # the suffix search's deadline check; once true, the answer says so
        nonlocal stopped
        stopped = stopped or budget.expired()
        return stopped

    remaining = np.ones(n, dtype=bool)
    sets, scores, orders = [], [], []
    stopped = False
    while remaining.any() and (max_sets is None or len(sets) < max_sets) and not stopped:
        if sets and expired():  # no further set after the deadline
            break
        if fc(remaining[None])[0] < threshold:
            break
        ticker = Ticker(method, int(remaining.sum()))
        if grad is None:
            order = backward_selection(fc, remaining, ticker)
        else:
            order = gradient_backward_selection(counted_grad, remaining, per_step, ticker)
        stopped = ticker.stopped
        stride = 0 if stopped else (per_step if grad is not None else 1)
        found, score = find_sis(fc, order, n, threshold, batch, stride=stride, expired=expired)
        if found is None:  # not reached: the full remaining set did (checked above) -- numerical safety
            break
        sets.append(found)
        scores.append(score)
        orders.append(order)
        remaining[found] = False
    return dict(sets=sets, scores=scores, orders=orders, n_forward=fc.n, n_gradient=grads[0],
                stopped_at_deadline=stopped)


def default_threshold(p_target: float, fraction: float = DEFAULT_FRACTION) -> float:
    """``fraction`` (0.9) of the model's probability of the target on the unmasked input."""
    return float(fraction) * float(p_target)


@register("sis")
def _sis(model: OnnxModel, x: np.ndarray, target: int, threshold: float | None = None, window: int = 4,
         max_sets: int | None = None, fill: float = 0.0, batch: int = DEFAULT_BATCH, selection: str = "auto",
         per_step: int | None = None) -> tuple[np.ndarray, dict]:
    """SIS collection map (see the module docstring).  Params: ``threshold``
    (probability; default ``0.9 * P(target | x)``), ``window`` (block side for image
    inputs, 4), ``max_sets`` (default 1 for image inputs, no limit for flat inputs),
    ``fill`` (masked value, the model's zero), ``batch`` (inputs per onnxruntime run),
    ``selection`` (``auto``: exact up to ``EXACT_LIMIT`` features, else ``gradient``),
    ``per_step`` (features masked per gradient step; default 1 % of them)."""
    layout = Layout(model.input_shape)
    h, w = layout.spatial
    if int(batch) < 1 or int(window) < 1:
        raise ValueError(f"batch and window must be >= 1, got {batch}, {window}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if per_step is not None and int(per_step) < 1:
        raise ValueError(f"per_step must be >= 1, got {per_step}")
    batch = int(batch)
    image = len(model.input_shape) != 1
    if max_sets is None:
        max_sets = 1 if image else None
    elif int(max_sets) < 1:
        raise ValueError(f"max_sets must be >= 1 or None, got {max_sets}")
    else:
        max_sets = int(max_sets)
    grid = BlockGrid(tuple(model.input_shape), int(window))
    group = grid.group()[: h * w]  # feature of each pixel (channels share it)
    x = np.asarray(x, dtype=np.float32)

    def f(keep: np.ndarray) -> np.ndarray:
        pixels = keep[:, group].reshape(-1, h, w)
        return target_probability(model, layout.masked(x, pixels, fill), target, batch)

    n = grid.n_vars
    p_target, p_empty = f(np.array([np.ones(n, bool), np.zeros(n, bool)]))
    rule = "given"
    if threshold is None:
        threshold, rule = default_threshold(p_target), f"{DEFAULT_FRACTION} * P(target | x)"
    threshold = float(threshold)
    use_gradient = selection == "gradient" or (selection == "auto" and n > EXACT_LIMIT)
    step = (int(per_step) if per_step is not None else max(1, -(-n // 100))) if use_gradient else 1
    grad = _mask_gradient(model, x, target, layout, group, fill) if use_gradient else None
    res = sis_collection(f, n, threshold, max_sets, batch, grad, step)
    values = np.zeros(n)
    masks = []
    for k, s in enumerate(res["sets"], start=1):
        values[s] = 1.0 / k
        unit = np.zeros(n, dtype=bool)
        unit[s] = True
        masks.append(layout.to_map(grid.to_pixels(unit)))
    info = dict(
        threshold=threshold, threshold_rule=rule, window=int(window), max_sets=max_sets, fill=float(fill),
        batch=batch, n_features=n, p_target=float(p_target), p_empty=float(p_empty),
        empty_sufficient=bool(p_empty >= threshold), sets=res["sets"], set_scores=res["scores"],
        set_sizes=[len(s) for s in res["sets"]], orders=res["orders"], n_forward=res["n_forward"] + 2,
        selection="gradient (batched, Carter et al. 2021)" if use_gradient else "exact backward selection",
        per_step=step, n_gradient=res["n_gradient"], stopped_at_deadline=res["stopped_at_deadline"],
        masks=np.array(masks, dtype=bool).reshape(len(masks), *layout.to_map(np.zeros((h, w))).shape),
    )
    return layout.to_map(grid.to_pixels(values).astype(np.float64)), info


def _mask_gradient(model: OnnxModel, x: np.ndarray, target: int, layout: Layout, group: np.ndarray,
                   fill: float) -> GradFn:
    """``keep (n,) bool -> d log P(target) / d m`` at the continuous keep mask ``m = keep`` over the
    features (pixels of a feature share its value, channels share the pixel's), through the
    fast torch copy of the model."""
    from smug.baselines.gradients import fast_torch, module_device
    from smug.models.torch_backend import torch_module

    torch = torch_module()
    net = fast_torch(model)
    dev = module_device(net)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32), device=dev)[None]
    idx = torch.as_tensor(np.asarray(group, dtype=np.int64), device=dev)
    h, w = layout.spatial
    shape = (1, 1, h, w) if len(layout.input_shape) == 3 else ((1, h, w) if len(layout.input_shape) == 2 else (1, -1))

    def grad(keep: np.ndarray) -> np.ndarray:
        m = torch.as_tensor(np.asarray(keep, dtype=np.float32), device=dev).requires_grad_(True)
        pm = m[idx].reshape(shape)
        xm = xt * pm + float(fill) * (1 - pm)
        logp = torch.log_softmax(net(xm), dim=1)[0, target]  # log f: not flattened where f saturates
        (g,) = torch.autograd.grad(logp, m)
        return g.double().cpu().numpy()

    return grad


def sis(model: OnnxModel, x: np.ndarray, target: int | None = None, **params) -> Attribution:
    """SIS map; params: threshold, window, max_sets, fill, batch, selection, per_step."""
    x, target = model.checked_input(x, target)
    t0 = time.perf_counter()
    saliency, info = _sis(model, x, target, **params)
    return Attribution(method="sis", map=np.asarray(saliency), target=target, params=info,
                       seconds=time.perf_counter() - t0)
