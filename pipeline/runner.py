"""``run(request) -> Explanation``: the one path from a request to an answer, for every front end.

Each method's module (and the encoders and solvers it pulls in) is imported when a request first
needs it, so that a start pays for its own method only (issue 29: start-up)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from smug.encoders.network import check_budget
from smug.ir import MaskProblem, NetworkProblem
from smug.deadline import Deadline
from smug.pipeline.explanation import Explanation
from smug.pipeline.identity import bound_to
from smug.pipeline.inputs import load_image, load_text
from smug.pipeline.request import ROBUST, SMUG, WHOLE_NETWORK, ExplainRequest
from smug.pipeline.stages import Progress, Stages


def run(request: ExplainRequest, progress: Progress | None = None, deadline: Deadline | None = None) -> Explanation:
    """Explain ``request``.  ``progress`` gets stage events and every improved verified mask;
    ``deadline`` (default: none beyond the request's solver timeout) caps the whole run:
    the solve gets what is left of it, and a stage that cannot start raises
    :class:`~smug.deadline.DeadlineExceeded`."""
    deadline = deadline or Deadline()
    return replace(_explain(request, Stages(progress), deadline), **bound_to(request))


def _explain(request: ExplainRequest, stages: Stages, deadline: Deadline) -> Explanation:
    if request.modality == "text":
        from smug.pipeline import text

        with stages.stage("load"):
            subject = load_text(request)
        return text.explain(request, subject, deadline, stages)
    lowered = request.method in (WHOLE_NETWORK, ROBUST)  # the network encoded whole: refuse by size first
    with stages.stage("load"):
        subject = load_image(request, check_budget if lowered else None)
    if request.method == SMUG:
        from smug.pipeline import first_layer

        return first_layer.explain(request, subject, deadline, stages)
    if request.method == WHOLE_NETWORK:
        from smug.pipeline import whole_network

        return whole_network.explain(request, subject, deadline, stages)
    if request.method == ROBUST:
        from smug.pipeline import robust

        return robust.explain(request, subject, deadline, stages)
    from smug.pipeline import baseline

    return baseline.explain(request, subject, stages, deadline)


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
        from smug.pipeline import text

        with stages.stage("load"):
            subject = load_text(request)
        enc = text.encode(request, subject, stages)
        return Encoded(enc.problem, 0, subject.model.name, enc)
    with stages.stage("load"):
        image = load_image(request)
    if request.method == WHOLE_NETWORK:
        from smug.pipeline import whole_network

        problem = whole_network.encode(request, image, stages)
        return Encoded(problem, problem.target, image.model.name, problem)
    from smug.pipeline import first_layer

    enc = first_layer.encode(request, image, stages)
    return Encoded(enc.problem, enc.target, image.model.name, enc)


@dataclass(frozen=True)
class Dump:
    """A problem's constraints as text in one format, with what produced them.

    ``header`` holds the readable header lines; ``meta`` the facts of the JSON header line
    (kind, format, model and input sha256, every parameter, the smug version and the map from
    variable names to blocks, pixels or words) that :mod:`smug.debugging` reads back."""

    text: str
    constraints: int
    header: tuple[str, ...]
    format: str = "smt2"
    meta: dict = field(default_factory=dict, repr=False)
    encoded: Encoded | None = field(default=None, repr=False, compare=False)  # the problem that was written

    @property
    def smtlib(self) -> str:
        """The dump's text (its historical name; any format)."""
        return self.text


def _variables(problem, request: ExplainRequest, words: tuple[str, ...] | None) -> dict:
    """Each variable name's block and top-left pixel (images) or word (text)."""
    import re

    if words is not None:
        return {name: {"word": j, "position": int(name[1:]), "text": words[j]}
                for j, name in enumerate(problem.var_names)}
    window = int(getattr(request.config, "window", 1) or 1)
    out = {}
    for name in problem.var_names:
        y, x = (int(v) for v in re.fullmatch(r"m_r(\d+)_c(\d+)", name).groups())
        out[name] = {"block": [y // window, x // window], "pixel": [y, x]}
    return out


def dump(request: ExplainRequest, progress: Progress | None = None, format: str = "smt2",
         bound: int | None = None, result: str | None = None) -> Dump:
    """``request``'s problem (first-layer Eq. 3, text, or whole-network Eq. 6) as a self-describing
    dump in ``format`` (smt2, wcnf, lp, mps; :mod:`smug.solver.dump_formats`).  ``bound``: smt2
    with ``count <= bound`` instead of z3's ``minimize``.  A robust request writes the question "is
    E robust?" (smt2 or lp; :func:`smug.pipeline.robust_dump.request_dump`), E the mask of the
    robust answer ``result`` (a result.json; default none fixed)."""
    if request.method == ROBUST:
        from smug.pipeline.robust_dump import request_dump
        from smug.solver.dump_formats import header_lines

        if bound is not None:
            raise ValueError("--bound does not apply to a robust question")
        text, meta = request_dump(request, format, result)
        return Dump(text, meta["n_vars"], tuple(header_lines(meta)[:-1]), format, meta)
    if result is not None:
        raise ValueError("a result's mask is dumped for robust requests only")
    import hashlib
    import json
    import sys

    import numpy as np

    from smug.solver.dump_formats import FORMATS, header_lines, write_dump

    if request.problem_kind is None:
        raise ValueError(f"the baseline {request.method!r} has no constraints to dump")
    if format not in FORMATS:
        raise ValueError(f"unknown dump format {format!r}; use one of {', '.join(FORMATS)}")
    if bound is not None and format != "smt2":
        raise ValueError("--bound applies to --format smt2 only")
    if format == "wcnf" and request.problem_kind == "whole-network":
        raise ValueError("wcnf is written for first-layer and text problems; use smt2, lp or mps for a whole network")
    enc = encode(request, progress)
    problem = enc.problem
    words = None
    if request.modality == "text":
        tokens = load_text(request).tokens
        words = tuple(tokens.words)
    kind = "text" if words is not None else request.problem_kind
    config = request.to_json()
    params = dict(config["config"])
    params.update(params.pop("smug", None) or {})
    meta = {
        "kind": kind, "model": enc.model, **bound_to(request), "input": request.input_label(),
        "x_sha256": hashlib.sha256(np.ascontiguousarray(problem.x, dtype=np.float64).tobytes()).hexdigest(),
        "target": int(enc.target), "params": params, "request": config,
        "smug_version": sys.modules["smug"].__version__,  # the parent package is loaded before any submodule
        "n_vars": int(problem.n_vars),
        "n_constraints": int(problem.n_constraints) if isinstance(problem, MaskProblem) else int(problem.n_classes - 1),
        "variables": _variables(problem, request, words),
    }
    meta = json.loads(json.dumps(meta))  # plain JSON (tuples as lists): what a reader gets back
    text_out = write_dump(problem, format, meta, bound)
    meta = {**meta, "format": format, "bound": bound}
    return Dump(text_out, meta["n_constraints"], tuple(header_lines(meta)[:-1]), format, meta, enc)


def warm(names: tuple[str, ...]) -> None:
    """Import the solvers and torch (when installed: seconds on a loaded machine, which a first request
    would otherwise spend inside its deadline) and load zoo models ahead of the first request (a server
    worker's ``--preload``)."""
    import smug.solver.z3_backend  # noqa: F401
    from smug.models.torch_backend import torch_module
    from smug.models.zoo import load_model

    try:
        torch_module()
    except ImportError:  # torch is optional: the gradient paths say so when a request needs it
        pass

    for name in names:
        load_model(name)
