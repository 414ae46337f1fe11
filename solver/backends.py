"""The solver's backend registry: which backends answer which problem kind.

Every front end asks here (argument choices, request validation, the portfolio's
members); nothing above the solver keeps its own list.
"""

from __future__ import annotations

FIRST_LAYER = ("auto", "highs", "z3")  # smug.solver.solve.solve
WHOLE_NETWORK = ("auto", "highs", "enum", "z3")  # smug.solver.network_solve.solve_network
PORTFOLIO = "portfolio"  # every backend of the kind at once, each in its own process
PROBLEM_KINDS = {"first-layer": FIRST_LAYER, "whole-network": WHOLE_NETWORK}


def backends(kind: str) -> tuple[str, ...]:
    """Backend names a request of ``kind`` ("first-layer" or "whole-network") may name, portfolio included."""
    return PROBLEM_KINDS[kind] + (PORTFOLIO,)


def all_backends() -> tuple[str, ...]:
    """Every backend name of any kind, in a stable order (for argument choices)."""
    names = dict.fromkeys(FIRST_LAYER + WHOLE_NETWORK + (PORTFOLIO,))
    return tuple(names)


def check_backend(kind: str, backend: str, portfolio: bool = True) -> str:
    """``backend`` if a ``kind`` problem can use it (``portfolio``: the portfolio too, as every front end
    may ask; a solver entry point runs one backend), else ``ValueError`` naming the choices."""
    allowed = backends(kind) if portfolio else PROBLEM_KINDS[kind]
    if backend not in allowed:
        raise ValueError(f"unknown backend {backend!r} for {kind}; choose from {allowed}")
    return backend


def kind_of(problem) -> str:
    """The problem kind of an IR instance."""
    from smug.ir import MaskProblem, NetworkProblem

    if isinstance(problem, MaskProblem):
        return "first-layer"
    if isinstance(problem, NetworkProblem):
        return "whole-network"
    raise TypeError(f"not a smug problem: {type(problem).__name__}")
