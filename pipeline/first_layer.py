"""First-layer SMUG on an image (paper 003 Sec. 3): IG, top-k, Eq. 3, minimal mask, Eq. 4 saliency."""

from __future__ import annotations

import numpy as np

from smug.encoders.dense_tail import dense_tail
from smug.encoders.first_layer import find_first_layer
from smug.encoders.saliency import base_mask, eq4_scores, smug_saliency
from smug.encoders.smug import SmugEncoding, encode_smug
from smug.deadline import Deadline
from smug.pipeline.explanation import Explanation, ImageParts
from smug.pipeline.inputs import ImageSubject, masked_prediction
from smug.pipeline.keep_class import KEEP_BUDGET, Verdict, keep_decision
from smug.pipeline.request import ExplainRequest
from smug.pipeline.solve import image_answer, solve_stage
from smug.pipeline.stages import Stages
from smug.solver.solve import Solution


def encode(request: ExplainRequest, subject: ImageSubject, stages: Stages) -> SmugEncoding:
    """IG on the first layer's activations, the top-k neurons and Eq. 3.  The model's derived
    artefacts (its first layer, the torch tail IG differentiates, from the disk cache when there)
    are timed under ``load``, IG under ``ig``, the rest under ``encode``."""
    with stages.stage("load"):
        layer = subject.model.derived("first_layer", lambda: find_first_layer(subject.model))
        if dense_tail(subject.model, layer) is None:  # IG's tail: numpy where the network has one, else torch
            subject.model.torch_tail(layer.activation_tensor)
    with stages.stage("encode"):
        enc = encode_smug(subject.model, subject.x, request.config, target=subject.target(request.target),
                          layer=layer)
    stages.timings["ig"] = round(enc.ig.seconds, 4)
    stages.timings["encode"] = round(stages.timings["encode"] - enc.ig.seconds, 4)
    return enc


def keep_class_solve(request: ExplainRequest, subject: ImageSubject, enc: SmugEncoding, deadline: Deadline,
                     stages: Stages) -> tuple[SmugEncoding, Solution, dict]:
    """Keep-class mode (:mod:`smug.pipeline.keep_class`): the masked image must keep the class."""
    loop_deadline = deadline.earlier(Deadline.after(KEEP_BUDGET * request.timeout))

    def check(e: SmugEncoding, mask) -> Verdict:
        mp = masked_prediction(subject.model, e.problem.masked_input(mask), e.target, subject.class_names,
                               request.keep.min_confidence)
        return Verdict(mp["keeps_class"], mp["target_confidence"], mp["margin"])

    return keep_decision(enc, enc.layer, subject.x, request.config, request.config.baseline, check,
                         lambda problem: solve_stage(problem, request, loop_deadline, stages), loop_deadline,
                         request.keep)


def explain(request: ExplainRequest, subject: ImageSubject, deadline: Deadline, stages: Stages) -> Explanation:
    enc = encode(request, subject, stages)
    keep_report = None
    if request.keep is None:
        sol = solve_stage(enc.problem, request, deadline, stages)
    else:
        enc, sol, keep_report = keep_class_solve(request, subject, enc, deadline, stages)
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
                                  "gradients": {**subject.model.gradient_paths(subject.x), **enc.gradients},
                                  **({} if keep_report is None else {"top_k": keep_report["constraints"]["top_k"],
                                                                     "gamma": keep_report["constraints"]["gamma"],
                                                                     "keep_class": keep_report})},
                        min_confidence=None if request.keep is None else request.keep.min_confidence)
