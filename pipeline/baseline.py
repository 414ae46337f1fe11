"""Baseline attribution maps (``smug.baselines``) as explanations: a map, nothing solved."""

from __future__ import annotations

from smug.baselines.attribution import attribute
from smug.pipeline.explanation import MAP, Explanation, ImageParts
from smug.pipeline.inputs import ImageSubject
from smug.pipeline.request import ExplainRequest
from smug.pipeline.stages import Stages


def explain(request: ExplainRequest, subject: ImageSubject, stages: Stages) -> Explanation:
    target = subject.target(request.target)
    with stages.stage("attribute"):
        a = attribute(subject.model, subject.x, target=target, method=request.method, **request.config.params)
    return Explanation(
        model=subject.model.name, input=subject.label, method=request.method, request=request.to_json(),
        target=a.target, target_name=subject.class_names[a.target], confidence=float(subject.probabilities[a.target]),
        status=MAP, objective=None, lower_bound=0, n_vars=0,
        proof="a baseline attribution map: no mask was solved for, nothing is proven",
        certificate={"valid": None, "checked": "nothing: a baseline map carries no mask"},
        masked_prediction={}, ig={}, encoding={"params": a.params},
        timings=stages.finish(), image=ImageParts(picture=subject.picture, saliency=a.map))
