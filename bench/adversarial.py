"""Small ReLU networks built to break floating-point bound propagation (issue 31).

Each network is a :class:`~smug.ir.NetworkProblem` over at most a dozen pixels (one mask
variable each), small enough for a brute force over every mask in exact arithmetic, and
built around the three ways a float bound can lie:

* **exact cancellations** of ``2^s`` (``s`` from 10 to 60): the first layer holds *twins*
  ``B = r A`` (the same few-bit weights and bias times ``r``, so ``h_B = r h_A`` exactly),
  and each second-layer unit reads ``r a 2^s h_A - a 2^s h_B`` (zero in exact arithmetic)
  with ordinary units in between; a float product ``lam @ W`` absorbs those units into the
  ``2^s`` terms and loses them;
* **margins down to 1e-12**: the output bias is shifted so that the full input's margin over
  the runner-up is tiny (of either sign after rounding);
* **ReLUs dead or live at the edge**: first-layer units whose pre-activation is exactly zero
  on some masks (few-bit weights, inputs and bias, so the sums are exact).

:func:`adversarial_network` is deterministic in its seed.  The reference is any exact
forward (``fractions.Fraction``); the tests and ``bench/soundness.py`` compare every
backend's verdict with it.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import scipy.sparse as sp

from smug.ir import DenseLayer, NetworkProblem

SCALES = (10, 20, 30, 40, 50, 60)  # exponents s of the cancelling terms
MARGINS = (1e-12, 1e-9, 1e-6, 1e-3)


def _few_bits(rng: np.random.Generator, size, bits: int = 6) -> np.ndarray:
    """Dyadic values ``k / 2^bits`` with small ``k``: sums of a few of their products are exact."""
    return rng.integers(-2**bits, 2**bits + 1, size=size) / 2.0**bits


def _exact_forward(layers: list[DenseLayer], v: np.ndarray) -> list[Fraction]:
    h = [Fraction(float(a)) for a in v]
    for layer in layers:
        W = layer.weight.toarray()
        h = [sum((Fraction(float(w)) * a for w, a in zip(row, h) if w), Fraction(float(b)))
             for row, b in zip(W, layer.bias)]
        if layer.relu:
            h = [max(a, Fraction(0)) for a in h]
    return h


def adversarial_network(seed: int, n_inputs: int | None = None) -> NetworkProblem:
    """A network of the module docstring: inputs -> first layer (twins, edge units, plain
    units) -> second layer (cancelling ``2^s`` terms) -> optionally a third -> 3 logits."""
    rng = np.random.default_rng(seed)
    n = int(n_inputs or rng.integers(5, 11))
    s = int(rng.choice(SCALES))
    x = rng.integers(1, 2**5, size=n) / 2.0**5  # few-bit pixels: exact first-layer sums
    if rng.random() < 0.5:
        x = x + rng.random(n) * 2.0**-20  # full-mantissa pixels for rounding in the first layer
    baseline = np.zeros(n)
    group = np.arange(n)
    # first layer: plain units, always-on units U (bias 2n) and edge units
    width_plain, width_on = int(rng.integers(2, 5)), int(rng.integers(1, 4))
    rows = [rng.normal(size=n) for _ in range(width_plain)] + [_few_bits(rng, n) for _ in range(width_on)]
    bias = list(rng.normal(size=width_plain)) + [2.0 * n] * width_on
    on_units = np.arange(width_plain, width_plain + width_on)
    for _ in range(int(rng.integers(1, 3))):  # edge units: exactly zero when a chosen subset is on
        w = _few_bits(rng, n)
        subset = rng.random(n) < 0.5
        rows.append(w)
        bias.append(-float(np.sum(w[subset] * np.round(x[subset] * 2**5) / 2**5)))
    W1 = np.array(rows)
    width1 = len(rows)
    # second layer: twins A, B = r A over the always-on units (stable, no bias), plain units between
    rows2, bias2, twins = [], [], []
    for _ in range(int(rng.integers(1, 3))):
        w = np.zeros(width1)
        w[on_units] = rng.integers(1, 2**6, size=width_on) / 2.0**6
        r = float(rng.choice([3, 5, 7, 0.75, 1.25]))
        a_index = len(rows2)
        rows2.append(w)
        bias2.append(0.0)
        for _ in range(int(rng.integers(1, 3))):
            rows2.append(rng.normal(size=width1))
            bias2.append(float(rng.normal()))
        twins.append((a_index, len(rows2), r))
        rows2.append(w * r)
        bias2.append(0.0)
    layers = [DenseLayer(sp.csr_matrix(W1), np.array(bias), True),
              DenseLayer(sp.csr_matrix(np.array(rows2)), np.array(bias2), True)]

    def cancelling(rows_out: int) -> np.ndarray:
        """Rows reading ``r a 2^s h_A - a 2^s h_B`` (zero exactly) beside ordinary terms."""
        W = rng.normal(size=(rows_out, len(rows2)))
        for i in range(rows_out):
            for a_index, b_index, r in twins:
                a = float(rng.integers(1, 2**40)) * 2.0**(s - 40)
                W[i, a_index], W[i, b_index] = r * a, -a  # r*a exact: a has 40 bits, r at most 3
        return W

    width = len(rows2)
    if rng.random() < 0.5:  # a third hidden layer: the cancellation then sits inside the CROWN pass
        width3 = int(rng.integers(3, 6))
        layers.append(DenseLayer(sp.csr_matrix(cancelling(width3)), rng.normal(size=width3), True))
        width = width3
        Wo = rng.normal(size=(3, width))
    else:
        Wo = cancelling(3)
    classes = 3
    bo = rng.normal(size=classes)
    layers.append(DenseLayer(sp.csr_matrix(Wo), bo, False))
    logits = _exact_forward(layers, x)
    target = int(np.argmax([float(v) for v in logits]))
    runner = max((j for j in range(classes) if j != target), key=lambda j: logits[j])
    margin = logits[target] - logits[runner]
    wanted = Fraction(float(rng.choice(MARGINS)))
    bo = bo.copy()
    bo[target] = float(Fraction(float(bo[target])) - margin + wanted)  # rounded: tiny, either sign
    layers[-1] = DenseLayer(sp.csr_matrix(Wo), bo, False)
    return NetworkProblem(layers=tuple(layers), x=x, baseline=baseline, group=group,
                          var_names=tuple(f"p{i}" for i in range(n)), target=target)


def exact_optimum(problem: NetworkProblem) -> tuple[int | None, list[np.ndarray]]:
    """The smallest size of a mask that keeps the class in exact arithmetic (``None``: no mask
    does), and every mask of that size (brute force over all ``2^n`` masks, plain fractions)."""
    n = problem.n_vars
    delta = Fraction(float(problem.delta))
    t = problem.target
    by_size: dict[int, list[np.ndarray]] = {}
    for code in range(2**n):
        mask = np.array([(code >> j) & 1 for j in range(n)], bool)
        z = _exact_forward(list(problem.layers), problem.masked_input(mask))
        if all(z[t] - z[j] > delta for j in range(len(z)) if j != t):
            by_size.setdefault(int(mask.sum()), []).append(mask)
    if not by_size:
        return None, []
    best = min(by_size)
    return best, by_size[best]
