"""``run(request) -> Explanation``: the one path from a request to an answer, for every front end."""

from __future__ import annotations

from dataclasses import dataclass

from smug.ir import MaskProblem, NetworkProblem
from smug.pipeline import baseline, first_layer, text, whole_network
from smug.pipeline.deadline import Deadline
from smug.pipeline.explanation import Explanation
from smug.pipeline.inputs import load_image, load_text
from smug.pipeline.request import SMUG, WHOLE_NETWORK, ExplainRequest
from smug.pipeline.stages import Progress, Stages


def run(request: ExplainRequest, progress: Progress | None = None, deadline: Deadline | None = None) -> Explanation:
    """Explain ``request``.  ``progress`` gets stage events and every improved verified mask;
    ``deadline`` (default: none beyond the request's solver timeout) caps the whole run:
    the solve gets what is left of it, and a stage that cannot start raises
    :class:`~smug.pipeline.deadline.DeadlineExceeded`."""
    deadline = deadline or Deadline()
    stages = Stages(progress)
    if request.modality == "text":
        with stages.stage("load"):
            subject = load_text(request)
        return text.explain(request, subject, deadline, stages)
    with stages.stage("load"):
        subject = load_image(request)
    if request.method == SMUG:
        return first_layer.explain(request, subject, deadline, stages)
    if request.method == WHOLE_NETWORK:
        return whole_network.explain(request, subject, deadline, stages)
    return baseline.explain(request, subject, stages)


@dataclass(frozen=True)
class Encoded:
    """A request's problem (the IR the solver takes) without solving it."""

    problem: MaskProblem | NetworkProblem
    target: int
    model: str
    details: object  # SmugEncoding, TextEncoding or the NetworkProblem itself


def encode(request: ExplainRequest, progress: Progress | None = None) -> Encoded:
    """The request's encoding: IG, top-k and Eq. 3 (first layer, text) or Eq. 6 (whole network)."""
    if request.problem_kind is None:
        raise ValueError(f"the baseline {request.method!r} has no constraints to encode")
    stages = Stages(progress)
    if request.modality == "text":
        with stages.stage("load"):
            subject = load_text(request)
        enc = text.encode(request, subject, stages)
        return Encoded(enc.problem, 0, subject.model.name, enc)
    with stages.stage("load"):
        image = load_image(request)
    if request.method == WHOLE_NETWORK:
        problem = whole_network.encode(request, image, stages)
        return Encoded(problem, problem.target, image.model.name, problem)
    enc = first_layer.encode(request, image, stages)
    return Encoded(enc.problem, enc.target, image.model.name, enc)


@dataclass(frozen=True)
class Dump:
    """A problem's constraints as SMT-LIB2 text, with what produced them."""

    smtlib: str
    constraints: int
    header: tuple[str, ...]


def dump(request: ExplainRequest, progress: Progress | None = None) -> Dump:
    """The first-layer encoding of ``request`` (Eq. 3) as SMT-LIB2 (z3's ``minimize`` extension)."""
    from smug.solver.smtlib import to_smtlib

    if request.method != SMUG:
        raise ValueError("constraint dumps are written for the first-layer SMUG encoding only")
    enc = encode(request, progress)
    c = request.to_json()
    header = (f"smug dump: model {enc.model}, input {request.input_label()}, target class {enc.target}",
              ", ".join(f"{k} {v}" for k, v in c["config"].items()))
    return Dump(to_smtlib(enc.problem, list(header)), int(enc.problem.n_constraints), header)
