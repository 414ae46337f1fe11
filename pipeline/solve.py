"""The solve stage: the request's backend under the deadline, in the isolation runner."""

from __future__ import annotations

from smug.pipeline.deadline import Deadline
from smug.pipeline.isolation import solve_isolated
from smug.pipeline.request import ExplainRequest
from smug.pipeline.stages import Stages
from smug.solver.solve import Solution


def solve_stage(problem, request: ExplainRequest, deadline: Deadline, stages: Stages) -> Solution:
    """Minimal mask of ``problem``: ``request.timeout`` seconds, or less when the deadline is sooner."""
    deadline.check("solve")
    timeout = deadline.budget(request.timeout)
    with stages.stage("solve", timeout=timeout):
        return solve_isolated(problem, request.backend, timeout, progress=stages.progress)
