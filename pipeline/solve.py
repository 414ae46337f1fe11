"""The solve stage: the request's backend under the deadline, in the isolation runner."""

from __future__ import annotations

from smug.pipeline.deadline import Deadline
from smug.pipeline.isolation import GRACE_S, solve_isolated
from smug.pipeline.request import ExplainRequest
from smug.pipeline.stages import Stages
from smug.solver.solve import Solution


def solve_stage(problem, request: ExplainRequest, deadline: Deadline, stages: Stages) -> Solution:
    """Minimal mask of ``problem`` in ``request.timeout`` seconds, or sooner: the solver's
    timeout plus the runner's grace (the time to kill an overrunning child and re-check its
    best mask) ends by the deadline."""
    deadline.check("solve")
    left = deadline.remaining()
    timeout = min(request.timeout, max(left - GRACE_S, left / 2))
    grace = min(GRACE_S, max(0.0, left - timeout))
    with stages.stage("solve", timeout=timeout):
        return solve_isolated(problem, request.backend, timeout, progress=stages.progress, grace=grace)
