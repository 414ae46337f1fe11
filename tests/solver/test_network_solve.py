import itertools
import time
from fractions import Fraction

import numpy as np
import pytest

from smug.events import Improved
from smug.solver.certificate import certify_network, exact_logits
from smug.solver.network_bounds import interval_bounds
from smug.solver.network_solve import FIT_SHARE, NETWORK_BACKENDS, _Run, solve_network

from _reference import random_network, reference_logits, reference_minimum
from _tiny_cnn import tiny_cnn_problem


def test_exact_logits_equal_the_plain_fraction_forward():
    p = random_network(1)
    mask = np.array([1, 0, 1, 1, 0, 0, 1], bool)
    assert exact_logits(p, p.masked_input(mask)) == reference_logits(p, mask)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("backend", NETWORK_BACKENDS)
def test_every_backend_finds_the_brute_force_minimum(seed, backend):
    p = random_network(seed, delta=0.05 * (seed % 3))
    k = reference_minimum(p)
    sol = solve_network(p, backend, timeout=60)
    if k is None:
        assert sol.status == "infeasible"
        return
    assert sol.status == "optimal", sol.proof
    assert sol.objective == k == sol.lower_bound and sol.certificate.valid
    z = reference_logits(p, sol.mask)
    assert all(z[p.target] - z[j] > Fraction(p.delta) for j in range(len(z)) if j != p.target)


@pytest.mark.parametrize("seed, second_conv, expected", [(5, False, 2), (2, False, 1), (0, True, 2), (4, True, 2)])
def test_every_backend_finds_the_brute_force_minimum_on_tiny_cnns(seed, second_conv, expected):
    """Conv -> BatchNorm -> Relu -> MaxPool (-> Conv -> Relu) -> Gemm, 9 block variables, delta half the
    full image's margin: every backend against the plain Fraction brute force."""
    p = tiny_cnn_problem(seed, window=2, delta=None, second_conv=second_conv, classes=4)
    k = reference_minimum(p)
    assert k == expected  # the instance is as hard as intended
    for backend in NETWORK_BACKENDS if not second_conv else ("auto", "enum", "highs"):  # z3: 10 s on those
        sol = solve_network(p, backend, timeout=60)
        if k is None:
            assert sol.status == "infeasible", backend
            continue
        assert sol.status == "optimal" and sol.objective == k == sol.lower_bound, (backend, sol.proof)
        z = reference_logits(p, sol.mask)
        assert all(z[p.target] - z[j] > Fraction(p.delta) for j in range(len(z)) if j != p.target)


@pytest.mark.parametrize("seed", range(5))
def test_interval_bounds_contain_every_masked_preactivation(seed):
    p = random_network(seed)
    bounds = interval_bounds(p)
    for on in itertools.product((0, 1), repeat=p.n_vars):
        h = p.masked_input(np.array(on, bool))
        for layer, b in zip(p.layers, bounds):
            z = layer.weight @ h + layer.bias
            assert np.all(b.lower <= z) and np.all(z <= b.upper)
            h = np.maximum(z, 0) if layer.relu else z


def test_planted_wrong_mask_is_rejected():
    p, sol = next((p, s) for p in map(random_network, range(40))
                  if (s := solve_network(p, "auto", timeout=30)).objective)
    assert sol.status == "optimal" and sol.objective > 0
    for j in np.flatnonzero(sol.mask):
        wrong = sol.mask.copy()
        wrong[j] = False
        assert not certify_network(p, wrong).valid  # a smaller mask would contradict optimality


def test_mnist_backends_agree_and_masks_keep_the_class(mnist, mnist_test_split):
    from smug.encoders.network import encode_network

    x_test, _ = mnist_test_split
    for i in range(4):
        for window in (4, 1):
            p = encode_network(mnist, x_test[i], window=window)
            backends = ("auto", "enum", "highs", "z3") if window == 4 else ("auto", "enum")
            sols = {b: solve_network(p, b, timeout=60) for b in backends}
            sizes = {s.objective for s in sols.values()}
            assert all(s.status == "optimal" and s.certificate.valid for s in sols.values())
            assert len(sizes) == 1
            masked = p.masked_input(sols["auto"].mask).reshape(mnist.input_shape).astype(np.float32)
            assert int(mnist.logits(masked[None])[0].argmax()) == p.target


@pytest.mark.parametrize("seed", range(6))
def test_the_greedy_start_is_a_valid_mask_no_smaller_than_the_optimum(seed):
    p = tiny_cnn_problem(seed, window=2, delta=None, second_conv=seed % 2 == 1, classes=4)
    k = reference_minimum(p)
    run = _Run(p, "auto", 60.0, None)
    grown = run.grow()
    if k is None:
        assert grown is None
        return
    if grown is not None:  # None only when no single greedy path reaches a valid mask
        assert certify_network(p, grown).valid and grown.sum() >= k
        z = reference_logits(p, grown)
        assert all(z[p.target] - z[j] > Fraction(p.delta) for j in range(len(z)) if j != p.target)
    assert sorted(run.order) == sorted(run.relevant)  # a reordering of the relevant variables, once grown


def test_reachable_sizes_follow_the_measured_speed():
    p = random_network(0, n_vars=7)
    run = _Run(p, "auto", 1000.0, None)
    n = run.n_relevant
    assert n == 7
    per_mask = FIT_SHARE * 1000.0 / 50  # the share of the time left holds 50 masks
    run.enum_seconds, run.enum_masks = per_mask * 1000, 1000
    # sizes 1, 2 (7 + 21 masks) fit, size 3 (35 more) does not
    assert run.reachable(1, n, max_masks=0) == 2
    assert run.reachable(2, n, max_masks=0) == 2  # 21 + 35 > 50
    assert run.reachable(3, n, max_masks=0) == 3  # 35 alone fits
    assert run.reachable(1, 1, max_masks=0) == 1
    run.deadline = time.perf_counter()  # no time left: nothing fits
    assert run.reachable(3, n, max_masks=0) == 2
    run.enum_masks = 0  # nothing measured yet: the work rule (MLP-mask units) decides
    assert run.reachable(1, n, max_masks=10**9) == n and run.reachable(1, n, max_masks=0) == 0


def test_bad_arguments():
    p = random_network(0)
    with pytest.raises(ValueError, match="backend"):
        solve_network(p, "cplex")
    with pytest.raises(ValueError, match="timeout"):
        solve_network(p, "auto", timeout=0)


@pytest.mark.parametrize("seed", range(4))
def test_the_first_answer_comes_before_any_bound_is_computed(seed, monkeypatch):
    """Issue 28 item 10: the whole input (every relevant variable on) is reported, verified, before
    the bounds and the proof start, so that a deadline that ends them still leaves a mask."""
    import smug.solver.network_solve as ns

    calls = []
    crown = ns.crown_bounds
    monkeypatch.setattr(ns, "crown_bounds", lambda *a, **k: calls.append(1) or crown(*a, **k))
    p = tiny_cnn_problem(seed, window=2, second_conv=seed % 2 == 1)
    events = []
    sol = solve_network(p, "auto", timeout=30, progress=lambda e: events.append((len(calls), e)))
    improved = [(bounds_done, e) for bounds_done, e in events if isinstance(e, Improved)]
    if sol.objective == 0:
        return  # the empty mask keeps the class: nothing to report
    bounds_done, first = improved[0]
    assert bounds_done == 0
    assert certify_network(p, first.mask).valid and first.size == int(first.mask.sum())
