"""Robust (abductive) explanations of an image model (issue 30): the smallest set of pixels or
blocks that fixes the decision under every epsilon-perturbation of the rest.

:class:`~smug.pipeline.robust_config.RobustConfig` owns the method's parameters and their checks
(a module of its own, light enough for requests to import); :func:`robust_query`
lowers a model (the whole-network encoding) and an input to a
:class:`~smug.solver.robust.RobustQuery`; :func:`explain_robust` runs the subset- or
cardinality-minimal search (:mod:`smug.solver.robust_explain`) with onnxruntime replaying every
counterexample.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from smug.encoders.blocks import BlockGrid
from smug.encoders.network import encode_network
from smug.models.runtime import OnnxModel
from smug.pipeline.robust_config import RobustConfig
from smug.solver.robust import RobustQuery, Verifier
from smug.solver.robust_explain import RobustExplanation, cardinality_minimal, subset_minimal


def pixel_grid(model: OnnxModel, window: int) -> BlockGrid:
    """The block grid of the model's input; a channels-last input with one channel (H, W, 1), such
    as VeriX's networks, has the flat order of (1, H, W)."""
    shape = tuple(model.input_shape)
    if len(shape) == 3 and shape[-1] == 1 and shape[0] != 1:
        shape = (1, shape[0], shape[1])
    return BlockGrid(shape, window)


def robust_query(model: OnnxModel, x: np.ndarray, config: RobustConfig, target: int | None = None) -> RobustQuery:
    """The question of :mod:`smug.solver.robust` for ``model`` at ``x`` (default target: the prediction)."""
    problem = encode_network(model, x, target=target)
    grid = pixel_grid(model, config.window)
    problem = dataclasses.replace(problem, group=grid.group(), var_names=grid.names())
    return RobustQuery(problem, float(config.epsilon), tuple(config.domain))


def runtime_replay(model: OnnxModel):
    """onnxruntime logits of flat float32 inputs (the counterexamples' second replay)."""
    return lambda V: model.logits(np.asarray(V, np.float32).reshape((-1,) + tuple(model.input_shape)))


def explain(request, subject, deadline, stages):
    """The pipeline's stage for ``method="robust"``: an :class:`~smug.pipeline.explanation.Explanation`
    whose mask is the explanation ``E`` (fixed pixels or blocks).  ``status`` is ``optimal`` for a
    proven cardinality-minimal ``E``, else ``feasible``; ``encoding["robust"]`` says what is proven
    (``subset-minimal``: every pixel of ``E`` has a replayed counterexample)."""
    from smug.pipeline.explanation import Explanation, ImageParts

    config: RobustConfig = request.config
    target = subject.target(request.target)
    with stages.stage("encode"):
        query = robust_query(subject.model, subject.x, config, target)
    deadline.check("solve")
    timeout = min(request.timeout, deadline.remaining())
    with stages.stage("solve"):
        verifier = Verifier(query, runtime=runtime_replay(subject.model))
        end = time.perf_counter() + timeout
        answer = (subset_minimal if config.mode == "subset" else cardinality_minimal)(verifier, end)
    grid = pixel_grid(subject.model, config.window)
    pixel_mask = grid.to_pixels(answer.fixed)
    robust = {"mode": config.mode, "epsilon": config.epsilon, "domain": list(config.domain),
              "status": answer.status, "proof": answer.proof, "size": answer.size,
              "lower_bound": answer.lower_bound, "unresolved": list(answer.unresolved),
              "counterexamples": len(answer.counterexamples), "stats": answer.stats}
    return Explanation(
        model=subject.model.name, input=subject.label, method=request.method, request=request.to_json(),
        target=target, target_name=subject.class_names[target], confidence=float(subject.probabilities[target]),
        status="optimal" if answer.size == answer.lower_bound else "feasible", objective=answer.size,
        lower_bound=answer.lower_bound, n_vars=grid.n_vars, proof=f"robust: {answer.proof}",
        certificate={"valid": True, "checked": f"robustness of E proven by {answer.proof} (rigorous bounds or "
                     "LP branch and bound with safe dual bounds); counterexamples replayed exactly and by onnxruntime"},
        masked_prediction={}, ig={}, encoding={"layers": [list(l.weight.shape) for l in query.problem.layers],
                                               "robust": robust},
        timings=stages.finish({}), image=ImageParts(picture=subject.picture, saliency=pixel_mask.astype(np.float64),
                                                     mask=answer.fixed.reshape(grid.shape), pixel_mask=pixel_mask))


def explain_robust(model: OnnxModel, x: np.ndarray, config: RobustConfig, timeout: float,
                   target: int | None = None, start: RobustExplanation | None = None) -> RobustExplanation:
    """A robust explanation within ``timeout`` seconds (the subset-minimal answer seeds the
    cardinality search unless ``start`` is given)."""
    deadline = time.perf_counter() + timeout
    verifier = Verifier(robust_query(model, x, config, target), runtime=runtime_replay(model))
    if config.mode == "subset":
        return subset_minimal(verifier, deadline)
    return cardinality_minimal(verifier, deadline, start=start)
