"""Whole-network masks (paper 003 Appendix A, Eq. 6): the smallest mask that keeps the class."""

from __future__ import annotations

import numpy as np

from smug.encoders.blocks import BlockGrid
from smug.encoders.first_layer import UnsupportedModel
from smug.encoders.graph_check import graph_margins
from smug.encoders.network import encode_network
from smug.ir import NetworkProblem
from smug.deadline import Deadline
from smug.pipeline.explanation import Explanation, ImageParts
from smug.pipeline.inputs import ImageSubject
from smug.pipeline.request import ExplainRequest
from smug.pipeline.solve import image_answer, solve_stage
from smug.pipeline.stages import Stages


def encode(request: ExplainRequest, subject: ImageSubject, stages: Stages) -> NetworkProblem:
    c = request.config
    with stages.stage("encode"):
        return encode_network(subject.model, subject.x, window=c.window, delta=c.delta, baseline=c.baseline,
                              target=subject.target(request.target), min_confidence=c.min_confidence)


def explain(request: ExplainRequest, subject: ImageSubject, deadline: Deadline, stages: Stages) -> Explanation:
    problem = encode(request, subject, stages)
    sol = solve_stage(problem, request, deadline, stages)
    grid = BlockGrid(subject.model.input_shape, request.config.window)
    found = sol.mask is not None
    pixel_mask = grid.to_pixels(sol.mask) if found else None
    image = ImageParts(
        picture=subject.picture,
        saliency=pixel_mask.astype(np.float64) if found else np.zeros(grid.spatial),
        mask=sol.mask.reshape(grid.shape) if found else None, pixel_mask=pixel_mask)
    encoding = {"layers": [list(l.weight.shape) for l in problem.layers], "delta": problem.delta,
                "keeps_class": "by construction: Eq. 6 holds every class margin > delta", **sol.stats}
    if found:  # the lowered network is what the certificate checked; this checks the graph itself
        with stages.stage("graph_check"):
            masked = problem.masked_input(sol.mask).reshape(subject.model.input_shape)
            try:
                encoding["graph_check"] = graph_margins(subject.model, masked, problem.target).summary(problem.delta)
            except UnsupportedModel as e:  # the lowering read it, so this is not expected: say so, keep the answer
                encoding["graph_check"] = {"keeps_class": None, "error": str(e)}
    return image_answer(request, subject, sol, problem, problem.target, grid.n_vars, image, stages, ig={},
                        encoding=encoding)
