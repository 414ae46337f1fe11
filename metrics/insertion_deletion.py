"""Insertion and deletion curves (Petsiuk et al., RISE, 2018) and their areas.

Pixels are ranked by the map (highest first; ties in index order, as the stopping
criterion of :mod:`smug.baselines.stopping` ranks them).  *Deletion* starts from the
input and sets the ranked pixels, ``step`` at a time, to the model's zero (the
masked-out value SMUG and the perturbation baselines use); *insertion* starts from
the all-zero input and puts the ranked pixels back.  Each curve is the softmax
probability of the explained class after 0, step, 2 step, ..., all pixels; the AUC
is the trapezoid rule over the fraction of pixels (x in [0, 1]).  Lower deletion and
higher insertion AUC are better.  Channels share the pixel order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smug.baselines.perturbation import Layout
from smug.baselines.stopping import unit_order
from smug.common import softmax
from smug.models.runtime import OnnxModel


@dataclass(frozen=True)
class Curves:
    fractions: np.ndarray  # (steps + 1,) fraction of pixels inserted / deleted
    insertion: np.ndarray
    deletion: np.ndarray

    @property
    def insertion_auc(self) -> float:
        return auc(self.fractions, self.insertion)

    @property
    def deletion_auc(self) -> float:
        return auc(self.fractions, self.deletion)


def auc(xs: np.ndarray, ys: np.ndarray) -> float:
    """Trapezoid area under ``ys`` over ``xs``."""
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2.0))


class InsertionDeletion:
    """``InsertionDeletion(steps)(model, x, saliency, target) -> Curves``."""

    def __init__(self, steps: int = 50, batch: int = 32):
        if int(steps) < 1 or int(batch) < 1:
            raise ValueError(f"steps and batch must be >= 1, got {steps}, {batch}")
        self.steps = int(steps)
        self.batch = int(batch)

    def __call__(self, model: OnnxModel, x: np.ndarray, saliency: np.ndarray, target: int | None = None) -> Curves:
        x, target = model.checked_input(x, target)
        layout = Layout(model.input_shape)
        h, w = layout.spatial
        scores = layout.spatial_scores(saliency).reshape(-1)
        order = unit_order(scores)
        n = h * w
        counts = np.unique(np.round(np.linspace(0, n, self.steps + 1)).astype(np.int64))
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
        keep = (rank[None, :] < counts[:, None]).reshape(len(counts), h, w).astype(np.float32)
        ins = layout.masked(x, keep)
        dele = layout.masked(x, 1.0 - keep)
        p_ins = softmax(model.logits(ins, batch_size=self.batch), axis=1)[:, target]
        p_del = softmax(model.logits(dele, batch_size=self.batch), axis=1)[:, target]
        return Curves(counts / n, p_ins, p_del)
