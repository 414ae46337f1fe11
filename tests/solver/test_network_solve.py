import itertools
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp

from smug.ir import DenseLayer, NetworkProblem
from smug.solver.certificate import certify_network, exact_logits
from smug.solver.network_bounds import interval_bounds
from smug.solver.network_solve import NETWORK_BACKENDS, solve_network
from smug.solver.portfolio import run_portfolio


def reference_logits(problem, mask):
    """Plain Fraction forward pass of the masked input."""
    v = [Fraction(float(a)) for a in problem.masked_input(mask)]
    for layer in problem.layers:
        W = layer.weight.toarray()
        v = [sum((Fraction(float(w)) * h for w, h in zip(row, v)), Fraction(float(b)))
             for row, b in zip(W, layer.bias)]
        if layer.relu:
            v = [max(q, Fraction(0)) for q in v]
    return v


def reference_minimum(problem):
    for k in range(problem.n_vars + 1):
        for on in itertools.combinations(range(problem.n_vars), k):
            mask = np.zeros(problem.n_vars, bool)
            mask[list(on)] = True
            z = reference_logits(problem, mask)
            t = problem.target
            if all(z[t] - z[j] > Fraction(problem.delta) for j in range(len(z)) if j != t):
                return k
    return None


def random_network(seed, n_vars=7, hidden=6, classes=3, delta=0.0):
    r = np.random.default_rng(seed)
    n_in = n_vars * 2
    W1, W2 = r.normal(size=(hidden, n_in)), r.normal(size=(classes, hidden))
    b1, b2 = r.normal(size=hidden) * 0.5, r.normal(size=classes) * 0.5
    layers = (DenseLayer(sp.csr_matrix(W1), b1, True), DenseLayer(sp.csr_matrix(W2), b2, False))
    x = r.uniform(0, 1, n_in)
    x[r.random(n_in) < 0.2] = 0.0  # some entries equal the baseline
    group = np.repeat(np.arange(n_vars), 2)
    probe = NetworkProblem(layers, x, np.zeros(n_in), group, tuple(f"m{j}" for j in range(n_vars)), 0, delta)
    target = int(np.argmax(probe.forward(x)))
    return NetworkProblem(layers, x, np.zeros(n_in), group, probe.var_names, target, delta)


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


def test_portfolio_returns_the_first_proven_optimum():
    p = random_network(5)
    sol = run_portfolio(solve_network, p, ("highs", "enum", "z3"), timeout=30)
    assert sol.status == "optimal" and sol.backend.startswith("portfolio:")
    assert sol.objective == reference_minimum(p) and sol.certificate.valid


def _crashing_backend(problem, backend, timeout):
    if backend == "boom":
        import os

        os._exit(134)  # what a z3 abort looks like to the parent
    if backend == "raise":
        raise MemoryError("solver blew up")
    return solve_network(problem, backend, timeout)


def test_portfolio_survives_crashing_backends():
    p = random_network(6)
    sol = run_portfolio(_crashing_backend, p, ("boom", "raise", "enum"), timeout=30)
    assert sol.status == "optimal" and sol.backend == "portfolio:enum"
    lost = run_portfolio(_crashing_backend, p, ("boom", "raise"), timeout=5)
    assert lost.status == "unknown" and lost.mask is None


def test_bad_arguments():
    p = random_network(0)
    with pytest.raises(ValueError, match="backend"):
        solve_network(p, "cplex")
    with pytest.raises(ValueError, match="timeout"):
        solve_network(p, "auto", timeout=0)


def _hog(problem, backend, timeout):
    if backend == "hog":
        return bytearray(4 * 2**30)  # 4 GiB, over the cap
    if backend == "hang":
        import time

        time.sleep(600)
    return solve_network(problem, backend, timeout)


def test_isolated_solver_memory_blowup_and_hang_do_not_take_the_caller_down():
    from smug.solver.portfolio import run_isolated

    p = random_network(7)
    blown = run_isolated(_hog, p, "hog", timeout=20, memory_mb=256)
    assert blown.status == "unknown" and "MemoryError" in blown.proof
    hung = run_portfolio(_hog, p, ("hang",), timeout=0.5, grace=0.5)
    assert hung.status == "unknown" and hung.mask is None
    fine = run_isolated(_hog, p, "enum", timeout=20, memory_mb=256)
    assert fine.status == "optimal" and fine.certificate.valid
