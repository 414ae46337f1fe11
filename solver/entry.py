"""The solver's entry point for a problem: the one function that answers it, by problem kind.

Kept apart from :mod:`smug.solver.backends` (the registry of names, which the entry points
themselves read) so that no import circle runs through the solver.
"""

from __future__ import annotations

from smug.solver.backends import kind_of


def solver_for(problem):
    """The entry point (``fn(problem, backend=, timeout=, progress=) -> Solution``) for ``problem``."""
    if kind_of(problem) == "first-layer":
        from smug.solver.solve import solve

        return solve
    from smug.solver.canonical_network import solve_canonical  # solve_network, then the canonical tie-break

    return solve_canonical
