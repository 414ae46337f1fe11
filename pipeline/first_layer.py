"""First-layer SMUG on an image (paper 003 Sec. 3): IG, top-k, Eq. 3, minimal mask, Eq. 4 saliency."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from smug.encoders.saliency import base_mask, eq4_scores, smug_saliency
from smug.encoders.smug import SmugEncoding, build_problem, encode_smug, select_top_k
from smug.pipeline.deadline import Deadline
from smug.pipeline.explanation import Explanation, ImageParts
from smug.pipeline.inputs import ImageSubject, masked_prediction
from smug.pipeline.keep_class import Verdict, refine, report
from smug.pipeline.request import ExplainRequest
from smug.pipeline.solve import image_answer, solve_stage
from smug.pipeline.stages import Stages
from smug.solver.solve import Solution

KEEP_BUDGET = 4  # keep-class mode: the whole ladder gets this many solver timeouts


def encode(request: ExplainRequest, subject: ImageSubject, stages: Stages) -> SmugEncoding:
    """IG on the first layer's activations, the top-k neurons and Eq. 3."""
    with stages.stage("encode"):
        enc = encode_smug(subject.model, subject.x, request.config, target=subject.target(request.target))
    stages.timings["ig"] = round(enc.ig.seconds, 4)
    stages.timings["encode"] = round(stages.timings["encode"] - enc.ig.seconds, 4)
    return enc


def keep_decision(request: ExplainRequest, subject: ImageSubject, enc: SmugEncoding, deadline: Deadline,
                  stages: Stages) -> tuple[SmugEncoding, Solution, dict]:
    """Keep-class mode (:mod:`smug.pipeline.keep_class`): the IG ranking of ``enc`` is reused for every
    constraint set; the loop has ``KEEP_BUDGET`` times the request's solver timeout, or the deadline."""
    c, keep = request.config, request.keep
    loop_deadline = deadline.earlier(Deadline.after(KEEP_BUDGET * request.timeout))
    attribution = enc.ig.attribution.ravel()

    def rebuild(k: int, gamma: float) -> SmugEncoding:
        if gamma == c.gamma and k == min(c.top_k, len(attribution[attribution > 0])):
            return enc
        neurons = select_top_k(attribution, k)
        problem, constrained = build_problem(enc.layer, subject.x, neurons, enc.grid, gamma, c.form, c.baseline)
        return replace(enc, problem=problem, neurons=neurons, attribution=attribution[neurons],
                       constrained=constrained)

    def check(e: SmugEncoding, mask) -> Verdict:
        mp = masked_prediction(subject.model, e.problem.masked_input(mask), e.target, subject.class_names,
                               keep.min_confidence)
        return Verdict(mp["keeps_class"], mp["target_confidence"], mp["margin"])

    chosen, steps = refine(c.top_k, c.gamma, int((attribution > 0).sum()), rebuild,
                           lambda problem: solve_stage(problem, request, loop_deadline, stages), check, loop_deadline)
    return chosen.encoding, chosen.solution, report(steps, chosen.step, keep)


def explain(request: ExplainRequest, subject: ImageSubject, deadline: Deadline, stages: Stages) -> Explanation:
    enc = encode(request, subject, stages)
    keep_report = None
    if request.keep is None:
        sol = solve_stage(enc.problem, request, deadline, stages)
    else:
        enc, sol, keep_report = keep_decision(request, subject, enc, deadline, stages)
    grid = enc.grid
    scores = eq4_scores(enc.layer, enc.neurons, enc.attribution, grid.spatial)
    base = base_mask(enc.layer, enc.neurons, grid)
    found = sol.mask is not None
    image = ImageParts(
        picture=subject.picture,
        saliency=smug_saliency(scores, grid, sol.mask) if found else np.zeros(grid.spatial),
        mask=sol.mask.reshape(grid.shape) if found else None,
        pixel_mask=grid.to_pixels(sol.mask) if found else None,
        base_mask=base.reshape(grid.shape), base_saliency=smug_saliency(scores, grid, base))
    return image_answer(request, subject, sol, enc.problem, enc.target, grid.n_vars, image, stages,
                        ig={"steps": enc.ig.steps, "completeness_error": enc.ig.completeness_error,
                            "f_input": enc.ig.f_input, "f_baseline": enc.ig.f_baseline},
                        encoding={"layer": enc.layer.kind, "activation": enc.layer.activation,
                                  "kept_neurons": int(len(enc.neurons)), "constraints": enc.problem.n_constraints,
                                  "components": sol.components, "form": request.config.form,
                                  **({} if keep_report is None else {"top_k": keep_report["constraints"]["top_k"],
                                                                     "gamma": keep_report["constraints"]["gamma"],
                                                                     "keep_class": keep_report})},
                        min_confidence=None if request.keep is None else request.keep.min_confidence)
