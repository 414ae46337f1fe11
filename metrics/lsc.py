"""LSC: Log Sparsity Confidence difference (paper 003 Eq. 5, after Dabkowski & Gal 2017).

For a binary mask: take the tightest box around the kept pixels, crop the input to
it, resize the crop back to the input size (bilinear), classify, and score::

    LSC = log(max(area_floor, a)) - log(c)          (Eq. 5, area_floor = 0.05)

with ``a`` the box's area as a fraction of the image and ``c`` the softmax
probability, on the resized crop, of the class the model predicts on the *full*
image (the explained class).  Lower is better.

Continuous maps (paper 003 Sec. 5: "setting a threshold ... iterating over multiple
thresholds ... to identify the one that results in the best LSC score"): the
candidate masks are ``{map > 0}`` and the upper level sets ``{map >= v}`` for the
map's distinct positive values ``v`` -- all of them when there are fewer than
``n_thresholds`` (default 100), else ``n_thresholds - 1`` of them evenly spaced *by
rank*, smallest and largest included (so every part of the value range is sampled
however skewed the map is).  The best (lowest)
score wins.

Choices the paper leaves open, fixed here:

* Thresholding is on the map as given (signed maps: negative values never enter a
  mask).  A map with no positive value has no box: it is scored on the whole image
  (``a = 1``), i.e. as MAXBOX, and flagged ``empty``.
* The crop is resized with half-pixel-centre bilinear interpolation clamped at the
  border (``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``,
  no antialiasing: a crop is only ever enlarged).
* The crop is taken in model space.  With an affine preprocessing
  ``(pixel - offset) / scale`` this equals cropping the pixels and preprocessing
  after, up to float rounding.  The reference code instead min-max normalises each
  crop and rounds it to uint8 before preprocessing; that stretches every crop's
  contrast to the full range, which Eq. 5 does not ask for and which changes the
  input beyond "crop and resize", so it is off by default and available as
  ``quantize=(low, high)`` (the model-space values of pixels 0 and 255).
* Identical boxes from different thresholds are classified once; boxes are
  evaluated in order of increasing area and the search stops as soon as
  ``log(max(area_floor, a))`` -- a lower bound of the score of every remaining box,
  since ``c <= 1`` -- is no better than the best score found.  This is exact.
* Ties between thresholds keep the smaller box (the first reached).

OPTBOX (paper 003 Sec. 4): the image split into a 10x10 grid of cells; every box
that is a union of a rectangle of cells (55 x 55 = 3025 boxes) is scored and the
best is kept, with the same exact area pruning.  CENTERBOX / MAXBOX are maps from
:mod:`smug.baselines.perturbation`, scored by :class:`LSC` like any other map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from smug.common import softmax
from smug.models.runtime import OnnxModel

AREA_FLOOR = 0.05


@dataclass(frozen=True)
class Box:
    """Rows ``top:bottom`` and columns ``left:right`` (ends exclusive) of an (H, W) image."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def pixels(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)

    def as_list(self) -> list[int]:
        return [self.top, self.left, self.bottom, self.right]


@dataclass(frozen=True)
class LSCResult:
    """The best box of one map: ``score`` = Eq. 5, ``area`` = a (before the floor),
    ``confidence`` = c, ``threshold`` that produced the box (None for OPTBOX or an
    empty map), ``boxes`` = distinct boxes classified, ``candidates`` = boxes
    considered (before pruning), ``empty`` = no positive value in the map."""

    score: float
    box: Box
    area: float
    confidence: float
    threshold: float | None
    boxes: int
    candidates: int
    empty: bool = False

    def to_json(self) -> dict:
        return {"score": self.score, "box": self.box.as_list(), "area": self.area,
                "confidence": self.confidence, "threshold": self.threshold, "boxes": self.boxes,
                "candidates": self.candidates, "empty": self.empty}


def lsc_score(area: float, confidence: float, area_floor: float = AREA_FLOOR) -> float:
    """Paper 003 Eq. 5: ``log(max(area_floor, a)) - log(c)`` (``+inf`` when c = 0)."""
    if not 0.0 <= area <= 1.0:
        raise ValueError(f"area must be a fraction in [0, 1], got {area}")
    if confidence <= 0.0:
        return math.inf
    return math.log(max(area_floor, area)) - math.log(confidence)


def tight_box(mask: np.ndarray) -> Box | None:
    """The tightest box around the True pixels of an (H, W) mask (None if none)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"a box needs an (H, W) mask, got shape {mask.shape}")
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return Box(int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)


def resize_matrix(out_size: int, in_size: int) -> np.ndarray:
    """(out, in) weights of a bilinear resize with half-pixel centres, clamped at the
    border (torch ``interpolate(mode='bilinear', align_corners=False)``)."""
    c = (np.arange(out_size) + 0.5) * in_size / out_size - 0.5
    c = np.clip(c, 0.0, in_size - 1)
    i0 = np.minimum(np.floor(c).astype(np.int64), max(in_size - 2, 0))
    frac = c - i0
    m = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    m[rows, i0] += 1.0 - frac
    if in_size > 1:
        m[rows, i0 + 1] += frac
    return m


def crop_resize(x: np.ndarray, box: Box, quantize: tuple[float, float] | None = None) -> np.ndarray:
    """The (C, H, W) input cropped to ``box`` and resized back to (H, W), bilinearly.
    ``quantize=(low, high)``: the reference code's variant -- the crop min-max
    normalised to 0..255 and rounded to integers, then mapped back to [low, high]."""
    x = np.asarray(x, dtype=np.float64)
    h, w = x.shape[-2:]
    crop = x[..., box.top : box.bottom, box.left : box.right]
    if quantize is not None:
        low, high = quantize
        lo, hi = crop.min(), crop.max()
        u8 = np.round(255.0 * (crop - lo) / (hi - lo)) if hi > lo else np.zeros_like(crop)
        crop = low + (high - low) * u8 / 255.0
    ry = resize_matrix(h, crop.shape[-2])
    rx = resize_matrix(w, crop.shape[-1])
    return (ry @ crop @ rx.T).astype(np.float32)


def _spatial(model: OnnxModel) -> tuple[int, int]:
    shape = tuple(model.input_shape)
    if len(shape) != 3:
        raise ValueError(f"LSC crops images: the model must take (C, H, W) inputs, not {shape}")
    return shape[1], shape[2]


def best_box(
    model: OnnxModel, x: np.ndarray, target: int, boxes: list[tuple[Box, float | None]],
    area_floor: float = AREA_FLOOR, batch: int = 32, quantize: tuple[float, float] | None = None,
) -> tuple[Box, float, float, float | None, int]:
    """The lowest-LSC box among ``boxes`` ((box, threshold) pairs, threshold None if
    none): (box, score, confidence, threshold, distinct boxes classified).  Distinct
    boxes in order of area; stops once the area floor bound cannot beat the best."""
    h, w = np.asarray(x).shape[-2:]
    first: dict[Box, float | None] = {}
    for b, t in boxes:
        first.setdefault(b, t)
    order = sorted(first, key=lambda b: (b.pixels, b.top, b.left, b.bottom, b.right))
    best: tuple[float, Box, float] | None = None
    done = 0
    i = 0
    while i < len(order):
        if best is not None and math.log(max(area_floor, order[i].pixels / (h * w))) >= best[0]:
            break
        part = order[i : i + batch]
        crops = np.stack([crop_resize(x, b, quantize) for b in part])
        probs = softmax(model.logits(crops, batch_size=batch), axis=1)[:, target]
        done += len(part)
        for b, c in zip(part, probs):
            s = lsc_score(b.pixels / (h * w), float(c), area_floor)
            if best is None or s < best[0]:
                best = (s, b, float(c))
        i += batch
    assert best is not None
    return best[1], best[0], best[2], first[best[1]], done


def thresholds(saliency: np.ndarray, n_thresholds: int = 100) -> np.ndarray:
    """0 and the map's distinct positive values (at most ``n_thresholds - 1`` of
    them, evenly spaced by rank, always including the smallest and the largest)."""
    if int(n_thresholds) < 2:
        raise ValueError(f"n_thresholds must be >= 2, got {n_thresholds}")
    s = np.asarray(saliency, dtype=np.float64)
    values = np.unique(s[s > 0])
    if values.size > n_thresholds - 1:
        values = values[np.unique(np.round(np.linspace(0, values.size - 1, n_thresholds - 1)).astype(np.int64))]
    return np.concatenate([[0.0], values])


def level_mask(saliency: np.ndarray, t: float) -> np.ndarray:
    """The mask of threshold ``t``: ``map > 0`` for t = 0, else ``map >= t``."""
    s = np.asarray(saliency, dtype=np.float64)
    return s > 0 if t == 0 else s >= t


class LSC:
    """Paper 003 Eq. 5 with the threshold sweep; ``LSC(...)(model, x, saliency, target)``
    -> :class:`LSCResult`.  ``target`` defaults to the class predicted on ``x``."""

    def __init__(self, n_thresholds: int = 100, area_floor: float = AREA_FLOOR, batch: int = 32,
                 quantize: tuple[float, float] | None = None):
        if not 0.0 < area_floor <= 1.0:
            raise ValueError(f"area_floor must be in (0, 1], got {area_floor}")
        if int(batch) < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self.n_thresholds = int(n_thresholds)
        self.area_floor = float(area_floor)
        self.batch = int(batch)
        self.quantize = quantize
        thresholds(np.zeros(1), self.n_thresholds)  # validates n_thresholds

    def __call__(self, model: OnnxModel, x: np.ndarray, saliency: np.ndarray, target: int | None = None) -> LSCResult:
        h, w = _spatial(model)
        s = np.asarray(saliency, dtype=np.float64)
        if s.ndim == 3 and s.shape[1:] == (h, w):
            s = s.sum(axis=0)  # a full-shape attribution: channels summed
        if s.shape != (h, w):
            raise ValueError(f"saliency map of shape {s.shape} does not fit the input's (H, W) = {(h, w)}")
        if not np.all(np.isfinite(s)):
            raise ValueError("saliency map contains NaN or Inf")
        x, target = model.checked_input(x, target)
        cands: list[tuple[Box, float | None]] = []
        for t in thresholds(s, self.n_thresholds):
            b = tight_box(level_mask(s, t))
            if b is not None:
                cands.append((b, float(t)))
        empty = not cands
        if empty:
            cands = [(Box(0, 0, h, w), None)]
        box, score, conf, t, done = best_box(model, x, target, cands, self.area_floor, self.batch, self.quantize)
        return LSCResult(score=score, box=box, area=box.pixels / (h * w), confidence=conf, threshold=t,
                         boxes=done, candidates=len({b for b, _ in cands}), empty=empty)


def grid_boxes(spatial: tuple[int, int], cells: int = 10) -> list[Box]:
    """Every box made of a rectangle of cells of a ``cells x cells`` grid (cell edges
    at ``round(i * H / cells)``): ``(cells (cells + 1) / 2)^2`` boxes."""
    h, w = spatial
    ys = [round(i * h / cells) for i in range(cells + 1)]
    xs = [round(i * w / cells) for i in range(cells + 1)]
    spans_y = [(ys[a], ys[b]) for a in range(cells) for b in range(a + 1, cells + 1) if ys[b] > ys[a]]
    spans_x = [(xs[a], xs[b]) for a in range(cells) for b in range(a + 1, cells + 1) if xs[b] > xs[a]]
    return [Box(t, l, b, r) for t, b in spans_y for l, r in spans_x]


class OptBox:
    """Paper 003's OPTBOX: the lowest-LSC box over a ``cells x cells`` grid, by brute
    force (with the exact area pruning of :func:`best_box`)."""

    def __init__(self, cells: int = 10, area_floor: float = AREA_FLOOR, batch: int = 32,
                 quantize: tuple[float, float] | None = None):
        if int(cells) < 1:
            raise ValueError(f"cells must be >= 1, got {cells}")
        self.cells = int(cells)
        self.area_floor = float(area_floor)
        self.batch = int(batch)
        self.quantize = quantize

    def __call__(self, model: OnnxModel, x: np.ndarray, target: int | None = None) -> LSCResult:
        h, w = _spatial(model)
        x, target = model.checked_input(x, target)
        boxes = grid_boxes((h, w), self.cells)
        box, score, conf, _, done = best_box(model, x, target, [(b, None) for b in boxes], self.area_floor,
                                             self.batch, self.quantize)
        return LSCResult(score=score, box=box, area=box.pixels / (h * w), confidence=conf, threshold=None,
                         boxes=done, candidates=len(boxes))

    def map(self, model: OnnxModel, x: np.ndarray, target: int | None = None) -> tuple[np.ndarray, LSCResult]:
        """OPTBOX as a map (1 inside its box) and its result."""
        r = self(model, x, target)
        m = np.zeros(_spatial(model))
        m[r.box.top : r.box.bottom, r.box.left : r.box.right] = 1.0
        return m, r
