"""The masking intermediate representation shared by every encoder and backend.

A :class:`MaskProblem` is paper 003's Eq. 3 written over plain arrays, with nothing
solver-specific in it.  Every input entry ``p`` (a pixel-channel, or an embedding
coordinate for text) belongs to one mask variable ``group[p]`` (a 4x4 block shared
over channels, or a word), or to no variable (``group[p] == -1``: never masked).
For a 0/1 mask ``m`` the masked input is

    v_p = x_p                 if group[p] == -1 or m[group[p]] == 1
    v_p = baseline_p          otherwise

and every constraint row ``i`` (one kept first-layer neuron) demands

    sum_p W[i, p] * v_p + bias_i  >  gamma * (sum_p W[i, p] * x_p + bias_i)

The objective is to minimise ``sum_j m_j``.  All numbers are float64 values and
the semantics is *exact rational arithmetic* over them (every float is a dyadic
rational), which is what :mod:`smug.solver.certificate` checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True)
class MaskProblem:
    """Eq. 3 of paper 003 over explicit arrays (see the module docstring)."""

    weights: sp.csr_matrix  # (n_constraints, n_inputs) float64
    bias: np.ndarray  # (n_constraints,) float64; zeros for the bias-free form
    x: np.ndarray  # (n_inputs,) float64 original input (model space, flattened)
    baseline: np.ndarray  # (n_inputs,) float64 masked-out value
    group: np.ndarray  # (n_inputs,) int64 mask variable of each input, -1 = none
    gamma: float
    var_names: tuple[str, ...]
    constraint_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n_cons, n_in = self.weights.shape
        if self.bias.shape != (n_cons,):
            raise ValueError(f"bias has shape {self.bias.shape}, expected ({n_cons},)")
        for name in ("x", "baseline", "group"):
            arr = getattr(self, name)
            if arr.shape != (n_in,):
                raise ValueError(f"{name} has shape {arr.shape}, expected ({n_in},)")
        if self.group.size and self.group.max(initial=-1) >= self.n_vars:
            raise ValueError("group refers to a mask variable that has no name")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"gamma must lie in [0, 1), got {self.gamma}")
        if self.constraint_names and len(self.constraint_names) != n_cons:
            raise ValueError("one constraint name per row is required")

    @property
    def n_vars(self) -> int:
        return len(self.var_names)

    @property
    def n_constraints(self) -> int:
        return self.weights.shape[0]

    def masked_input(self, mask: np.ndarray) -> np.ndarray:
        """The input the mask keeps: x where the variable is on, baseline elsewhere."""
        return masked_input(self.x, self.baseline, self.group, mask)

    def constraint_name(self, i: int) -> str:
        return self.constraint_names[i] if self.constraint_names else f"c{i}"


def masked_input(x: np.ndarray, baseline: np.ndarray, group: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """x where the entry's variable is on (or it has none), baseline elsewhere."""
    mask = np.asarray(mask, dtype=bool)
    keep = np.ones(x.shape, dtype=bool)
    grouped = group >= 0
    keep[grouped] = mask[group[grouped]]
    return np.where(keep, x, baseline)


DENSE_PRODUCTS_MAX = 1 << 20  # weights up to this many entries, a quarter non-zero, are multiplied as dense arrays


@dataclass(frozen=True)
class DenseLayer:
    """``y = W h + b``, followed by ReLU when ``relu``.

    The products of the bound and attack code read :attr:`matrix` and its derived forms, built once
    per layer: the same numbers as ``weight``, dense when the weight is small and not sparse
    (scipy's per-product overhead is most of the cost of a 10x784 product), read-only when dense.
    They are not pickled (a layer travels as its three fields)."""

    weight: sp.csr_matrix  # (n_out, n_in) float64
    bias: np.ndarray  # (n_out,) float64
    relu: bool

    def __getstate__(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @cached_property
    def matrix(self) -> np.ndarray | sp.csr_matrix:
        """``weight`` as a dense array (at most :data:`DENSE_PRODUCTS_MAX` entries, a quarter non-zero) or CSR."""
        W = sp.csr_matrix(self.weight)
        size = W.shape[0] * W.shape[1]
        return _read_only(W.toarray()) if size <= DENSE_PRODUCTS_MAX and 4 * W.nnz >= size else W

    @cached_property
    def matrix_t(self) -> np.ndarray | sp.csr_matrix:
        """The transpose of :attr:`matrix` (CSR again when sparse)."""
        W = self.matrix
        return W.T if isinstance(W, np.ndarray) else sp.csr_matrix(W.T)

    @cached_property
    def abs_matrix_t(self) -> np.ndarray | sp.csr_matrix:
        """``|W|`` transposed."""
        A = abs(self.matrix_t)
        return _read_only(A) if isinstance(A, np.ndarray) else A

    @cached_property
    def signed_parts(self) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray | sp.csr_matrix]:
        """``max(W, 0)`` and ``min(W, 0)`` (exact)."""
        W = self.matrix
        if isinstance(W, np.ndarray):
            return _read_only(np.maximum(W, 0.0)), _read_only(np.minimum(W, 0.0))
        return W.maximum(0).tocsr(), W.minimum(0).tocsr()


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class NetworkProblem:
    """Paper 003 Eq. 6 / Appendix A: the smallest mask whose masked input keeps the class.

    With ``v`` the masked input (as in :class:`MaskProblem`), ``h_0 = v`` and
    ``h_{l+1} = relu?(W_l h_l + b_l)``, every other class ``j`` must satisfy
    ``logit[target] - logit[j] > delta``.  Semantics: exact rational arithmetic.
    """

    layers: tuple[DenseLayer, ...]
    x: np.ndarray
    baseline: np.ndarray
    group: np.ndarray
    var_names: tuple[str, ...]
    target: int
    delta: float = 0.0

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("a network needs at least one layer")
        n_in = self.x.shape[0]
        for name in ("baseline", "group"):
            if getattr(self, name).shape != (n_in,):
                raise ValueError(f"{name} must have shape ({n_in},)")
        width = n_in
        for i, layer in enumerate(self.layers):
            if layer.weight.shape[1] != width or layer.bias.shape != (layer.weight.shape[0],):
                raise ValueError(f"layer {i} does not fit the width {width} of its input")
            width = layer.weight.shape[0]
        if self.layers[-1].relu:
            raise ValueError("the last layer gives logits: no ReLU after it")
        if not 0 <= self.target < width:
            raise ValueError(f"target {self.target} is not one of the {width} classes")
        if not (np.isfinite(self.delta) and self.delta >= 0):
            raise ValueError(f"delta must be a finite number >= 0, got {self.delta}")

    @property
    def n_vars(self) -> int:
        return len(self.var_names)

    @property
    def n_classes(self) -> int:
        return self.layers[-1].weight.shape[0]

    def masked_input(self, mask: np.ndarray) -> np.ndarray:
        return masked_input(self.x, self.baseline, self.group, mask)

    def forward(self, v: np.ndarray) -> np.ndarray:
        """float64 logits for an input vector (for reference and candidates only)."""
        h = np.asarray(v, dtype=np.float64)
        for layer in self.layers:
            h = layer.weight @ h + layer.bias
            if layer.relu:
                h = np.maximum(h, 0.0)
        return h


@dataclass(frozen=True)
class LinearForm:
    """Eq. 3 collapsed onto the mask variables in float64: ``A m + c > rhs``.

    This is what numeric backends consume; it is rounded, so answers built from it
    are only trusted after :func:`smug.solver.certificate.certify`.
    """

    A: sp.csr_matrix  # (n_constraints, n_vars)
    const: np.ndarray  # (n_constraints,) masked value with every variable off
    rhs: np.ndarray  # (n_constraints,) gamma * original


def linear_form(problem: MaskProblem) -> LinearForm:
    """Collapse the input-level problem onto its mask variables (float64)."""
    W = problem.weights.tocsr()
    grouped = problem.group >= 0
    delta = np.where(grouped, problem.x - problem.baseline, 0.0)
    fixed = np.where(grouped, problem.baseline, problem.x)
    cols = np.flatnonzero(grouped)
    P = sp.csr_matrix(
        (delta[cols], (cols, problem.group[cols])), shape=(W.shape[1], problem.n_vars)
    )
    A = (W @ P).tocsr()
    A.eliminate_zeros()
    const = W @ fixed + problem.bias
    rhs = problem.gamma * (W @ problem.x + problem.bias)
    return LinearForm(A=A, const=np.asarray(const), rhs=np.asarray(rhs))
