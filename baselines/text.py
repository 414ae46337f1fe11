"""Baselines for text models (paper 003 Sec. 5.3): IG on the embeddings and SIS over tokens.

Both are registered in :mod:`smug.baselines.attribution`, so they take the same call
shape as the image baselines::

    attribute(model, ids, target=None, method="text_ig", **params)

``ids`` is the model-space input of a text model: (L,) token ids as float32,
padding positions hold ``pad_id`` (0).  The model's only output (``target`` 0) is
the rating ``r`` in [0, 1].  Maps are (L,) with one score per position; padding
positions score 0.  A masked or removed word is the padding token, whose
embedding is the zero vector in the zoo model (see :mod:`smug.encoders.text`).

* ``text_ig``: Integrated Gradients (paper 003 Eq. 1) of ``r`` with respect to the
  word embeddings, zero-embedding baseline (= the all-padding text), midpoint rule;
  a word's score is the signed sum over its embedding dimensions (green = raises
  the rating, red = lowers it).
* ``text_sis``: Sufficient Input Subsets (Carter et al. 2019) with backward selection
  over the words (:mod:`smug.baselines.sis`).  The explained score is ``s = r``
  (direction ``positive``) or ``s = 1 - r`` (``negative``; ``auto``: positive when
  ``r >= 0.5``).  Threshold on the rating: by default a subset is sufficient when
  it keeps ``fraction`` (0.9) of the score gain of the whole text over the empty
  (all-padding) text, ``s(S) >= s(empty) + 0.9 (s(x) - s(empty))``; an absolute
  ``threshold`` on ``s`` may be given instead.  (A bare ``0.9 s(x)`` is useless for a
  rating: for ``r`` near 0.5 the empty text already reaches it.)  The map scores
  the words of the k-th disjoint SIS ``sign / k`` (``sign`` +1 for positive, -1
  for negative), as paper 003 scores SIS words in (0, 1] by their set's rank.
"""

from __future__ import annotations

import numpy as np

from smug.baselines.attribution import register
from smug.baselines.sis import DEFAULT_BATCH, sis_collection
from smug.models.runtime import OnnxModel
from smug.models.text_cnn import PAD_ID

DEFAULT_FRACTION = 0.9


def text_layers(model: OnnxModel):
    """:func:`smug.encoders.text.find_text_layers`, kept as
    ``model.derived("text_layers", ...)`` (reads the graph only)."""
    from smug.encoders.text import find_text_layers

    return model.derived("text_layers", lambda: find_text_layers(model))


def _ids(model: OnnxModel, x: np.ndarray, target: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer ids and the word positions; checks the input is a text with words."""
    if target != 0:
        raise ValueError(f"a text model has one output (the rating, target 0), got target {target}")
    ids = np.asarray(x, dtype=np.float64).ravel()
    if np.any(ids != np.round(ids)) or ids.min() < 0:
        raise ValueError("a text model's input must be non-negative integer token ids")
    ids = ids.astype(np.int64)
    words = np.flatnonzero(ids != pad_id)
    if len(words) == 0:
        raise ValueError("the text has no words (only padding)")
    return ids, words


def signed_direction(direction: str, rating: float) -> tuple[str, float]:
    from smug.encoders.text import choose_direction

    d = choose_direction(direction, rating)
    return d, (1.0 if d == "positive" else -1.0)


@register("text_ig")
def text_integrated_gradients(model: OnnxModel, x: np.ndarray, target: int, steps: int = 64,
                              pad_id: int = PAD_ID) -> tuple[np.ndarray, dict]:
    """IG on the embeddings, summed over dimensions (signed); see the module docstring."""
    from smug.encoders.ig import integrated_gradients
    from smug.models.torch_backend import device, torch_module

    ids, _ = _ids(model, x, target, pad_id)
    if int(steps) < 1:
        raise ValueError(f"IG needs at least one step, got {steps}")
    torch = torch_module()
    layers = text_layers(model)
    tail = model.torch_tail(layers.embedded_tensor)
    xin = torch.as_tensor(ids.astype(np.float32)[None], device=device())

    def rating(e):
        return tail(e, xin.expand(e.shape[0], -1))[:, 0]

    emb = layers.embedding[ids].astype(np.float32)  # (L, E): the Gather output of one text
    ig = integrated_gradients(rating, emb, steps=int(steps), schedule="uniform")
    scores = ig.attribution.sum(axis=1)
    scores[ids == pad_id] = 0.0
    info = dict(steps=ig.steps, baseline="zero embedding (the all-padding text)", reduce="signed sum over dims",
                f_input=ig.f_input, f_baseline=ig.f_baseline, completeness_error=ig.completeness_error,
                pad_id=int(pad_id))
    return scores, info


def sis_threshold(s_full: float, s_empty: float, fraction: float = DEFAULT_FRACTION) -> float:
    """``s(empty) + fraction * (s(x) - s(empty))``: keep ``fraction`` of the gain over the empty text."""
    return float(s_empty + fraction * (s_full - s_empty))


@register("text_sis")
def text_sis(model: OnnxModel, x: np.ndarray, target: int, threshold: float | None = None,
             fraction: float = DEFAULT_FRACTION, direction: str = "auto", max_sets: int | None = None,
             pad_id: int = PAD_ID, batch: int = DEFAULT_BATCH) -> tuple[np.ndarray, dict]:
    """SIS collection over the words; see the module docstring.  ``info['sets']`` lists
    each SIS's positions (most important set first, last-masked word first)."""
    from smug.models.text_cnn import ratings

    ids, words = _ids(model, x, target, pad_id)
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    if max_sets is not None and int(max_sets) < 1:
        raise ValueError(f"max_sets must be >= 1 or None, got {max_sets}")
    if int(batch) < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    r_full = float(ratings(model, ids[None])[0])
    direction, sign = signed_direction(direction, r_full)

    def f(keep: np.ndarray) -> np.ndarray:
        rows = np.repeat(ids[None], len(keep), axis=0)
        rows[:, words] = np.where(keep, ids[words][None], pad_id)
        r = ratings(model, rows, batch_size=int(batch))
        return r if direction == "positive" else 1.0 - r

    n = len(words)
    s_full, s_empty = f(np.array([np.ones(n, bool), np.zeros(n, bool)]))
    rule = "given"
    if threshold is None:
        threshold, rule = sis_threshold(s_full, s_empty, float(fraction)), \
            f"s(empty) + {float(fraction)} * (s(x) - s(empty))"
    threshold = float(threshold)
    res = sis_collection(f, n, threshold, None if max_sets is None else int(max_sets), int(batch), method="text_sis")
    scores = np.zeros(len(ids))
    sets = [words[s] for s in res["sets"]]
    for k, s in enumerate(sets, start=1):
        scores[s] = sign / k
    info = dict(threshold=threshold, threshold_rule=rule, direction=direction, rating=r_full,
                score="rating" if direction == "positive" else "1 - rating", s_full=float(s_full),
                s_empty=float(s_empty), empty_sufficient=bool(s_empty >= threshold), sets=sets,
                set_scores=res["scores"], set_sizes=[len(s) for s in sets], n_words=n,
                n_forward=res["n_forward"] + 2, pad_id=int(pad_id), max_sets=max_sets,
                stopped_at_deadline=res["stopped_at_deadline"])
    return scores, info
