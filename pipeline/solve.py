"""The solve stage: the request's backend under the deadline, in the isolation runner."""

from __future__ import annotations

from smug.deadline import Deadline
from smug.pipeline.explanation import Explanation, ImageParts
from smug.pipeline.inputs import ImageSubject, masked_prediction
from smug.isolation.runner import GRACE_S, solve_isolated
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
    with stages.stage("solve"):
        return solve_isolated(problem, request.backend, timeout, progress=stages.progress, grace=grace)


def image_answer(request: ExplainRequest, subject: ImageSubject, sol: Solution, problem, target: int, n_vars: int,
                 image: ImageParts, stages: Stages, ig: dict, encoding: dict,
                 min_confidence: float | None = None) -> Explanation:
    """The :class:`Explanation` of a solved image problem; the masked input is run through the
    model (``masked_prediction``: informative, not a constraint)."""
    prediction = {}
    if sol.mask is not None:
        prediction = masked_prediction(subject.model, problem.masked_input(sol.mask), target, subject.class_names,
                                       min_confidence)
    return Explanation(
        model=subject.model.name, input=subject.label, method=request.method, request=request.to_json(),
        target=target, target_name=subject.class_names[target], confidence=float(subject.probabilities[target]),
        status=sol.status, objective=sol.objective, lower_bound=sol.lower_bound, n_vars=n_vars, proof=sol.proof,
        certificate=sol.certificate.summary() if sol.certificate else {"valid": False},
        masked_prediction=prediction, ig=ig,
        encoding={**encoding, "backend": sol.backend, "tie_break": sol.stats.get("tie_break")},
        timings=stages.finish(sol.timings), image=image)
