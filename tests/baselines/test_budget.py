"""Batched gradient SIS and the baselines' time budget (progress, stop at the deadline), against
plain references: finite differences through onnxruntime and fresh single-input forward passes."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.special import softmax

from smug.baselines.attribution import attribute
from smug.baselines.budget import Budget, Ticker, budget, current
from smug.deadline import Deadline
from smug.events import WorkDone
from smug.baselines.perturbation import Layout
from smug.baselines.sis import _mask_gradient, find_sis, gradient_backward_selection, sis, sis_collection
from smug.encoders.blocks import BlockGrid


def prob(model, x, target) -> float:
    return float(softmax(model.logits(np.asarray(x, np.float32)[None], batch_size=1)[0].astype(np.float64))[target])


def test_mask_gradient_matches_central_differences(tiny_conv, rng):
    """d log P(target) / d m for a soft block mask, by torch, against onnxruntime differences."""
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    layout = Layout(model.input_shape)
    grid = BlockGrid(tuple(model.input_shape), 3)
    group = grid.group()[:81]
    keep = rng.random(grid.n_vars) < 0.7
    grad = _mask_gradient(model, x, 1, layout, group, 0.3)(keep)

    def logp(m):
        pm = m[group].reshape(1, 9, 9)
        return np.log(prob(model, layout.masked(x, pm, 0.3)[0], 1))

    eps = 1e-2
    for i in range(grid.n_vars):
        e = np.zeros(grid.n_vars)
        e[i] = eps
        m = keep.astype(np.float64)
        fd = (logp(m + e) - logp(m - e)) / (2 * eps)
        assert grad[i] == pytest.approx(fd, rel=2e-2, abs=2e-3)


def test_gradient_backward_selection_on_an_additive_score():
    """f = w . keep: the gradient is w, so features leave by increasing weight, per_step at a time."""
    w = np.array([5.0, -1.0, 3.0, 0.5, 2.0, 4.0, -2.0])
    calls = []

    def grad(keep):
        calls.append(keep.copy())
        return w.copy()

    order = gradient_backward_selection(grad, np.ones(7, bool), per_step=3)
    assert order.tolist() == np.argsort(w, kind="stable").tolist() and len(calls) == 3
    assert calls[1].sum() == 4 and calls[2].sum() == 1


@pytest.mark.parametrize("stride", [0, 1, 3])
def test_find_sis_strided_and_bisected_on_a_monotone_score(stride):
    """For a score that grows with every kept feature, all searches find the shortest suffix."""
    w = np.arange(1.0, 11.0)
    order = np.arange(10)  # least important (smallest weight) first

    def f(keep):
        return keep.astype(np.float64) @ w

    found, score = find_sis(f, order, 10, 26.5, batch=4, stride=stride)
    assert sorted(found.tolist()) == [7, 8, 9] and score == 27.0  # 10 + 9 + 8 = 27 >= 26.5 > 19


def test_gradient_sis_sets_are_sufficient_and_disjoint(tiny_conv, rng):
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    att = sis(model, x, window=2, max_sets=3, selection="gradient", per_step=2)
    p = att.params
    assert p["selection"].startswith("gradient") and p["n_gradient"] > 0 and not p["stopped_at_deadline"]
    seen = set()
    for s, mask in zip(p["sets"], p["masks"]):
        assert s.size and not seen & set(s.tolist())
        seen |= set(s.tolist())
        assert prob(model, x * mask, att.target) >= p["threshold"]  # checked by a fresh forward pass


def test_auto_selection_is_exact_for_small_inputs(tiny_conv, rng):
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    assert sis(model, x).params["selection"] == "exact backward selection"
    with pytest.raises(ValueError, match="selection"):
        sis(model, x, selection="greedy")


def test_ticker_reports_and_stops_at_the_deadline():
    events = []
    with budget(Deadline.after(3600), events.append) as b:
        assert current() is b
        t = Ticker("m", 4)
        assert all(t.tick() for _ in range(4)) and not t.stopped
    assert events[-1] == WorkDone("attribute", "m", 4, 4) and str(events[-1]) == "attribute: m 4/4"
    assert current() == Budget()  # reset after the block
    with budget(Deadline.after(-1)):
        t = Ticker("m", 4)
        assert t.tick() is False and t.stopped
        t2 = Ticker("m", 1)
        assert t2.tick() is True  # the last unit of work never counts as stopped


@pytest.mark.parametrize("method,params,used", [
    ("sis", dict(window=2, selection="gradient", per_step=1), None),
    ("extremal_perturbation", dict(iterations=50), "iterations_run"),
    ("rise", dict(n_masks=40, batch=8), "n_masks_run"),
    ("sfl", dict(n_mutants=40, batch=8), "n_mutants_run"),
    ("occlusion", dict(patch=2, stride=1, batch=8), "n_patches_run"),
    ("integrated_gradients", dict(steps=32, batch=4), "steps_run"),  # issue 31: every baseline's loop
])
def test_baselines_stop_at_a_past_deadline_with_what_they_have(tiny_conv, rng, method, params, used):
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    events = []
    att = attribute(model, x, method=method, deadline=Deadline.after(-1), progress=events.append, **params)
    p = att.params
    assert p["stopped_at_deadline"] is True and np.all(np.isfinite(att.map)) and events
    if used is not None:
        assert 0 < p[used] < {"iterations_run": 50, "n_masks_run": 40, "n_mutants_run": 40,
                              "steps_run": 32}.get(used, 10 ** 6)
    else:  # SIS: still a sufficient set (bisection over the unfinished order)
        assert prob(model, x * p["masks"][0], att.target) >= p["threshold"]
    full = attribute(model, x, method=method, **params)
    assert full.params["stopped_at_deadline"] is False


def _suffix_batch(keep: np.ndarray) -> bool:
    """A batch of the suffix search (sizes 1, 2, ... kept), not one of backward selection (equal sizes)."""
    sizes = keep.sum(axis=1).tolist()
    return len(sizes) > 1 and sizes == list(range(sizes[0], sizes[0] + len(sizes)))


def test_sis_stops_its_suffix_search_at_the_deadline_and_says_so():
    """Issue 31: the deadline passing after backward selection, during the suffix search, must end the
    scan (the rest bisected: still a sufficient set) and set stopped_at_deadline."""
    w = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    calls = {"suffix": 0}

    def f(keep):
        if _suffix_batch(keep):
            calls["suffix"] += 1
            if calls["suffix"] == 1:  # the deadline passes while the first suffix batch runs
                time.sleep(deadline.remaining() + 0.01)
        return keep.astype(np.float64) @ w

    deadline = Deadline.after(5)
    with budget(deadline):
        res = sis_collection(f, 8, 30.0, max_sets=None, batch=2)
    assert res["stopped_at_deadline"] is True and len(res["sets"]) == 1
    (found,) = res["sets"]
    assert f(np.isin(np.arange(8), found)[None])[0] >= 30.0  # sufficient
    assert calls["suffix"] == 1  # the linear scan ended at the deadline (bisection runs one size a call)
    with budget(Deadline.after(3600)):
        full = sis_collection(f, 8, 30.0, max_sets=None, batch=2)
    assert full["stopped_at_deadline"] is False and sorted(full["sets"][0].tolist()) == [3, 4, 5, 6, 7]
