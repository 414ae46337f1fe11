"""Forward-only baselines (issue 5): occlusion, RISE, DeepCover/SFL, CENTERBOX, MAXBOX.

Every method only runs the user's model forward, batched on onnxruntime
(``OnnxModel.logits``); the model and its proto are never touched.  A *masked*
input entry takes the model's zero (0 in model space: black for the MNIST MLP,
mid-grey for EfficientNet-Lite0), the same masked-out value as SMUG's masks.
Masks are spatial and shared over channels: a model input (C, H, W) or (H, W) gets
an (H, W) map; a flat input (n,) is treated as one row (1, n) and gets an (n,) map.

Two ways to call each method, one call shape ``fn(model, x, target, **params)``:

* the public functions here (:func:`occlusion`, :func:`rise`, :func:`sfl`,
  :func:`centerbox`, :func:`maxbox`) return an
  :class:`~smug.baselines.attribution.Attribution` (method, map, target, params,
  seconds); ``target=None`` explains the predicted class;
* the same methods are registered in :data:`smug.baselines.attribution.METHODS`
  (``(map, info)`` functions) for ``attribute(model, x, target, method=name)``.

The DeepCover stopping criterion (paper 000) is
:func:`smug.baselines.stopping.stopping_criterion`; the pure SFL spectrum and
measures are in :mod:`smug.baselines.sfl`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from smug.baselines.ahead import one_ahead
from smug.baselines.attribution import Attribution, register
from smug.baselines.budget import Ticker
from smug.baselines.sfl import MEASURES, ZOLTAR_K, mutant_masks, sfl_counts, sfl_measures
from smug.common import softmax
from smug.encoders.blocks import BlockGrid
from smug.models.runtime import OnnxModel

DEFAULT_BATCH = 8  # onnxruntime on Lite0: 4-8 inputs a run were the fastest measured on 1 and 2 threads


# ---- shared helpers (also used by stopping.py) -----------------------------------
@dataclass(frozen=True)
class Layout:
    """Where the spatial (H, W) grid sits in a model input shape."""

    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.input_shape) not in (1, 2, 3):
            raise ValueError(f"perturbation baselines need a (C, H, W), (H, W) or (n,) input, got {self.input_shape}")

    @property
    def spatial(self) -> tuple[int, int]:
        s = self.input_shape
        return (1, s[0]) if len(s) == 1 else (s[-2], s[-1])

    def masked(self, x: np.ndarray, keep: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """A batch of inputs from ``x`` and spatial keep masks ``keep`` (B, H, W), 1 = keep,
        0 = replace by ``fill`` (soft masks in [0, 1] interpolate); channels share the mask."""
        keep = np.asarray(keep, dtype=np.float32)
        x = np.asarray(x, dtype=np.float32)
        if len(self.input_shape) == 1:
            k = keep.reshape(len(keep), -1)
        elif len(self.input_shape) == 2:
            k = keep
        else:
            k = keep[:, None]
        out = x[None] * k
        if fill != 0.0:
            out = out + np.float32(fill) * (np.float32(1.0) - k)
        return out

    def to_map(self, hw: np.ndarray) -> np.ndarray:
        """A spatial (H, W) array as the method's map: (n,) for a flat input."""
        return hw.reshape(self.input_shape) if len(self.input_shape) == 1 else hw

    def spatial_scores(self, ranking: np.ndarray) -> np.ndarray:
        """A ranking map as (H, W): given (H, W) (or (n,) for flat inputs), or with the
        input's full shape (channels summed)."""
        r = np.asarray(ranking, dtype=np.float64)
        h, w = self.spatial
        if r.size == h * w:
            return r.reshape(h, w)
        if r.shape == tuple(self.input_shape):
            return r.reshape(-1, h, w).sum(axis=0)
        raise ValueError(f"ranking map of shape {r.shape} fits neither {(h, w)} nor the input {self.input_shape}")


def target_probability(model: OnnxModel, batch: np.ndarray, target: int, batch_size: int = DEFAULT_BATCH) -> np.ndarray:
    """Softmax probability of ``target`` for each input of ``batch`` (one batched run)."""
    return softmax(model.logits(batch, batch_size=batch_size), axis=1)[:, target]


def chunks(n: int, size: int) -> Iterator[slice]:
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def _check_batch(batch: int) -> int:
    if int(batch) < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    return int(batch)


# ---- occlusion (Zeiler & Fergus) -------------------------------------------------
def patch_starts(n: int, patch: int, stride: int) -> list[int]:
    """Top (left) offsets of patches of size ``patch`` along an axis of length ``n``:
    every ``stride``, plus a last one flush with the edge so that every pixel is covered."""
    starts = list(range(0, n - patch + 1, stride))
    if starts[-1] != n - patch:
        starts.append(n - patch)
    return starts


def _occlusion(model: OnnxModel, x: np.ndarray, target: int, patch: int | None = None, stride: int | None = None,
               fill: float = 0.0, batch: int = DEFAULT_BATCH) -> tuple[np.ndarray, dict]:
    """Map = drop of the target probability (softmax) when a ``patch x patch`` square
    is set to ``fill`` (default: the model's zero), averaged over the patches covering
    the pixel; patches every ``stride`` pixels plus one flush with each far edge
    (:func:`patch_starts`).  Defaults: patch ~ min(H, W) / 14, stride = patch // 2."""
    layout = Layout(model.input_shape)
    h, w = layout.spatial
    batch = _check_batch(batch)
    if patch is None:
        patch = max(1, round(min(h, w) / 14))  # 16 px on 224, 2 px on 28
    if stride is None:
        stride = max(1, patch // 2)
    if int(patch) < 1 or int(stride) < 1:
        raise ValueError(f"patch and stride must be >= 1, got {patch}, {stride}")
    patch, stride = int(patch), int(stride)
    ph, pw = min(patch, h), min(patch, w)
    boxes = [(r, c) for r in patch_starts(h, ph, stride) for c in patch_starts(w, pw, stride)]
    p0 = float(target_probability(model, np.asarray(x, np.float32)[None], target)[0])
    total = np.zeros((h, w))
    count = np.zeros((h, w))
    ticker = Ticker("occlusion", len(boxes))
    for sl in chunks(len(boxes), batch):
        if ticker.stopped:
            break
        part = boxes[sl]
        keep = np.ones((len(part), h, w), dtype=np.float32)
        for i, (r, c) in enumerate(part):
            keep[i, r : r + ph, c : c + pw] = 0.0
        probs = target_probability(model, layout.masked(x, keep, fill), target, batch)
        for (r, c), p in zip(part, probs):
            total[r : r + ph, c : c + pw] += p0 - p
            count[r : r + ph, c : c + pw] += 1
        ticker.tick(len(part))
    drop = np.zeros((h, w))
    np.divide(total, count, out=drop, where=count > 0)  # a stride above the patch leaves gaps: 0 there
    info = dict(patch=patch, stride=stride, fill=float(fill), batch=batch, n_patches=len(boxes), p_target=p0,
                n_patches_run=ticker.done, stopped_at_deadline=ticker.stopped)
    return layout.to_map(drop), info


# ---- RISE (Petsiuk et al. 2018) ---------------------------------------------------
def _bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """(out, in) linear-interpolation weights of a resize from ``in_size`` to
    ``out_size`` samples: half-pixel centres, mirrored at the borders (what
    ``skimage.transform.resize(order=1, mode='reflect')`` does, as in RISE's code)."""
    c = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
    if in_size == 1:
        return np.ones((out_size, 1))
    c = np.abs(c)  # mirror below 0
    c = np.where(c > in_size - 1, 2 * (in_size - 1) - c, c)  # and above in_size - 1
    i0 = np.clip(np.floor(c).astype(np.int64), 0, in_size - 2)
    frac = c - i0
    m = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    m[rows, i0] += 1.0 - frac
    m[rows, i0 + 1] += frac
    return m


def rise_masks(rng: np.random.Generator, n: int, spatial: tuple[int, int], cell: int, p: float):
    """The random parts of ``n`` RISE masks: binary grids (n, gh, gw) with P(1) = p and
    shifts (n,), (n,) in [0, cell); :func:`render_rise_masks` turns them into masks."""
    h, w = spatial
    ch, cw = min(cell, h), min(cell, w)
    gh, gw = math.ceil(h / ch), math.ceil(w / cw)
    grids = (rng.random((n, gh, gw)) < p).astype(np.float64)
    dy = rng.integers(0, ch, n)
    dx = rng.integers(0, cw, n)
    return grids, dy, dx


def render_rise_masks(grids: np.ndarray, dy: np.ndarray, dx: np.ndarray, spatial: tuple[int, int], cell: int) -> np.ndarray:
    """Masks (n, H, W) in [0, 1]: each grid upsampled bilinearly to
    ((gh + 1) cell, (gw + 1) cell) and cropped to (H, W) at its random shift."""
    h, w = spatial
    ch, cw = min(cell, h), min(cell, w)
    gh, gw = grids.shape[1:]
    ah = _bilinear_matrix((gh + 1) * ch, gh)
    aw = _bilinear_matrix((gw + 1) * cw, gw)
    rows = ah[dy[:, None] + np.arange(h)]  # (n, H, gh)
    cols = aw[dx[:, None] + np.arange(w)]  # (n, W, gw)
    return rows @ grids @ cols.transpose(0, 2, 1)


def _rise(model: OnnxModel, x: np.ndarray, target: int, n_masks: int = 2000, cell: int | None = None,
          p: float = 0.5, seed: int = 0, batch: int = DEFAULT_BATCH) -> tuple[np.ndarray, dict]:
    """Map = sum_i P(target | x * M_i) M_i / (N p) over N random smooth masks M_i
    (binary grid of ``cell``-pixel cells, kept with probability ``p``, bilinearly
    upsampled and randomly shifted).  Deterministic for a given ``seed``."""
    layout = Layout(model.input_shape)
    h, w = layout.spatial
    batch = _check_batch(batch)
    if cell is None:
        cell = max(1, math.ceil(min(h, w) / 7))  # RISE's s = 7 cells on ImageNet
    if int(n_masks) < 1 or int(cell) < 1 or not 0.0 < p <= 1.0:
        raise ValueError(f"need n_masks >= 1, cell >= 1 and 0 < p <= 1, got {n_masks}, {cell}, {p}")
    n_masks, cell = int(n_masks), int(cell)
    rng = np.random.default_rng(seed)
    grids, dy, dx = rise_masks(rng, n_masks, (h, w), cell, p)
    sal = np.zeros((h, w))
    ticker = Ticker("rise", n_masks)

    def rendered(sl: slice) -> tuple[np.ndarray, np.ndarray]:
        masks = render_rise_masks(grids[sl], dy[sl], dx[sl], (h, w), cell)
        return masks, layout.masked(x, masks)

    for masks, inputs in one_ahead(rendered, chunks(n_masks, batch)):
        if ticker.stopped:
            break
        probs = target_probability(model, inputs, target, batch)
        sal += np.tensordot(probs, masks, axes=1)
        ticker.tick(len(masks))
    sal /= max(1, ticker.done) * p  # the masks used (all of them unless the deadline came first)
    info = dict(n_masks=n_masks, cell=cell, p=float(p), seed=seed, batch=batch, n_masks_run=ticker.done,
                stopped_at_deadline=ticker.stopped)
    return layout.to_map(sal), info


# ---- DeepCover / SFL (paper 000; Sun et al. 2020) --------------------------------
CONVENTIONS = ("deepcover", "presence")


def _sfl(model: OnnxModel, x: np.ndarray, target: int, n_mutants: int = 2000,
         sigma: float | tuple[float, float] = (0.0, 1.0), window: int = 1, measure: str = "tarantula",
         convention: str = "deepcover", zoltar_k: float = ZOLTAR_K, seed: int = 0,
         batch: int = DEFAULT_BATCH) -> tuple[np.ndarray, dict]:
    """DeepCover's SFL ranking map.

    ``n_mutants`` (paper 000's test-suite size s) mutants each mask a random fraction
    ``sigma`` (σ; or a per-mutant fraction drawn from a range ``(lo, hi)``) of the
    units -- pixels, or ``window x window`` blocks shared over channels -- to the
    model's zero; each mutant is classified (top-1) and the spectrum of every unit
    is scored by ``measure`` (one of ochiai, tarantula, zoltar, wong2; paper 000's
    Eq. 5).  Paper 000 settled on Tarantula.  The default ``sigma=(0, 1)`` draws
    each mutant's fraction uniformly, which keeps both passing and failing mutants
    in the suite (a fixed σ = 0.3 on MNIST digits often gives no failing mutant).
    Mutants mask uniformly random units, not DeepCover code's adaptive squares.

    ``convention`` says what "executed" and "failing" mean:

    * ``"deepcover"`` (default, DeepCover's code, ``to_rank.py``): a unit is
      executed when it is masked; a mutant fails when its top-1 is not ``target``;
    * ``"presence"`` (paper 000's wording, "executed (not masked)"): a unit is
      executed when it is kept; a mutant fails when its top-1 *is* ``target``.

    Either way a unit scores high when masking it goes with losing the class.
    ``info`` reports ``n_failing`` / ``n_passing`` and the per-unit spectrum
    ``counts`` (:class:`~smug.baselines.sfl.SFLCounts`; ``sfl_measures(counts)``
    gives the other measures).  A suite with no failing or no passing mutant gives
    a degenerate map: flagged ``degenerate``, not raised."""
    layout = Layout(model.input_shape)
    h, w = layout.spatial
    batch = _check_batch(batch)
    if measure not in MEASURES:
        raise ValueError(f"unknown SFL measure '{measure}': choose one of {list(MEASURES)}")
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown SFL convention '{convention}': choose one of {list(CONVENTIONS)}")
    if int(n_mutants) < 1:
        raise ValueError(f"n_mutants must be >= 1, got {n_mutants}")
    n_mutants = int(n_mutants)
    grid = BlockGrid(tuple(model.input_shape), int(window))  # flat inputs: one unit per feature
    group = grid.group()[: h * w]  # unit of each pixel (channels share it)
    rng = np.random.default_rng(seed)
    totals = None
    n_failing = 0
    ticker = Ticker("sfl", n_mutants)

    def mutants(sl: slice) -> tuple[np.ndarray, np.ndarray]:  # drawn in order: the same suite as a plain loop
        masked_units = mutant_masks(rng, sl.stop - sl.start, grid.n_vars, sigma)
        return masked_units, layout.masked(x, ~masked_units[:, group].reshape(-1, h, w))

    for masked_units, inputs in one_ahead(mutants, chunks(n_mutants, batch)):
        if ticker.stopped:
            break
        pred = model.logits(inputs, batch_size=batch).argmax(axis=1)
        if convention == "deepcover":
            executed, failing = masked_units, pred != target
        else:
            executed, failing = ~masked_units, pred == target
        counts = sfl_counts(executed, failing)
        totals = counts if totals is None else type(counts)(*(a + b for a, b in zip(totals, counts)))
        n_failing += int(failing.sum())
        ticker.tick(len(masked_units))
    scores = sfl_measures(totals, zoltar_k=zoltar_k)[measure]
    used = ticker.done  # every mutant unless the deadline came first
    info = dict(
        n_mutants=n_mutants, sigma=sigma, window=int(window), measure=measure, convention=convention,
        zoltar_k=float(zoltar_k), seed=seed, batch=batch, n_failing=n_failing, n_passing=used - n_failing,
        degenerate=n_failing in (0, used), counts=totals, n_mutants_run=used, stopped_at_deadline=ticker.stopped,
    )
    return layout.to_map(grid.to_pixels(scores).astype(np.float64)), info


# ---- CENTERBOX / MAXBOX (paper 003, Sec. 4) --------------------------------------
def center_box(spatial: tuple[int, int], fraction: float = 0.5) -> np.ndarray:
    """(H, W) booleans: a box at the centre covering ``fraction`` of the area (the
    aspect ratio of the image; sides rounded so the area is as close as integers allow)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    h, w = spatial
    bh = int(np.clip(round(h * math.sqrt(fraction)), 1, h))
    bw = int(np.clip(round(h * w * fraction / bh), 1, w))
    top, left = (h - bh) // 2, (w - bw) // 2
    box = np.zeros((h, w), dtype=bool)
    box[top : top + bh, left : left + bw] = True
    return box


def _centerbox(model: OnnxModel, x: np.ndarray, target: int, fraction: float = 0.5) -> tuple[np.ndarray, dict]:
    """Paper 003's CENTERBOX: 1 inside a centred box covering half the image, 0 outside."""
    layout = Layout(model.input_shape)
    box = center_box(layout.spatial, fraction)
    return layout.to_map(box.astype(np.float64)), dict(fraction=float(fraction), area=float(box.mean()))


def _maxbox(model: OnnxModel, x: np.ndarray, target: int) -> tuple[np.ndarray, dict]:
    """Paper 003's MAXBOX: the maximal mask, the whole image."""
    layout = Layout(model.input_shape)
    return layout.to_map(np.ones(layout.spatial)), {}


# ---- registry and public call shape ----------------------------------------------
_IMPLS: dict[str, Callable] = {
    "occlusion": _occlusion,
    "rise": _rise,
    "sfl": _sfl,
    "centerbox": _centerbox,
    "maxbox": _maxbox,
}
for _name, _fn in _IMPLS.items():
    register(_name)(_fn)


def _run(name: str, model: OnnxModel, x: np.ndarray, target: int | None, params: dict) -> Attribution:
    x, target = model.checked_input(x, target)
    t0 = time.perf_counter()
    saliency, info = _IMPLS[name](model, x, target, **params)
    return Attribution(method=name, map=np.asarray(saliency), target=target, params=dict(info),
                       seconds=time.perf_counter() - t0)


def occlusion(model: OnnxModel, x: np.ndarray, target: int | None = None, **params) -> Attribution:
    """Occlusion map; params: patch, stride, fill (default 0 = model zero), batch."""
    return _run("occlusion", model, x, target, params)


def rise(model: OnnxModel, x: np.ndarray, target: int | None = None, **params) -> Attribution:
    """RISE map; params: n_masks, cell, p, seed, batch."""
    return _run("rise", model, x, target, params)


def sfl(model: OnnxModel, x: np.ndarray, target: int | None = None, **params) -> Attribution:
    """DeepCover/SFL map; params: n_mutants, sigma, window, measure, convention, zoltar_k, seed, batch."""
    return _run("sfl", model, x, target, params)


def centerbox(model: OnnxModel, x: np.ndarray, target: int | None = None, **params) -> Attribution:
    """CENTERBOX map (paper 003); param: fraction (default 0.5)."""
    return _run("centerbox", model, x, target, params)


def maxbox(model: OnnxModel, x: np.ndarray, target: int | None = None, **params) -> Attribution:
    """MAXBOX map (paper 003): all ones."""
    return _run("maxbox", model, x, target, params)


#: name -> public function returning an Attribution (the same methods are in attribution.METHODS).
PERTURBATION_METHODS: dict[str, Callable[..., Attribution]] = {
    "occlusion": occlusion,
    "rise": rise,
    "sfl": sfl,
    "centerbox": centerbox,
    "maxbox": maxbox,
}
