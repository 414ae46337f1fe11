"""Baseline attribution maps (``smug.baselines``) as explanations: a map, nothing solved."""

from __future__ import annotations

from smug.baselines.attribution import attribute
from smug.deadline import Deadline
from smug.pipeline.explanation import MAP, Explanation, ImageParts
from smug.pipeline.inputs import ImageSubject
from smug.pipeline.request import ExplainRequest
from smug.pipeline.stages import Stages


def explain(request: ExplainRequest, subject: ImageSubject, stages: Stages,
            deadline: Deadline | None = None) -> Explanation:
    """The baseline's map; its long loops report progress and stop with what they have (the answer
    says so) at ``deadline`` (the server's gRPC deadline, a farm job's timeout) or at the request's
    ``timeout`` seconds from this stage's start, whichever comes first."""
    target = subject.target(request.target)
    deadline = Deadline.after(request.timeout).earlier(deadline)
    deadline.check("attribute")
    with stages.stage("attribute"):
        a = attribute(subject.model, subject.x, target=target, method=request.method, deadline=deadline,
                      progress=stages.emit, **request.config.params)
    stopped = bool(a.params.get("stopped_at_deadline"))
    return Explanation(
        model=subject.model.name, input=subject.label, method=request.method, request=request.to_json(),
        target=a.target, target_name=subject.class_names[a.target], confidence=float(subject.probabilities[a.target]),
        status=MAP, objective=None, lower_bound=0, n_vars=0,
        proof="a baseline attribution map: no mask was solved for, nothing is proven"
              + ("; the method stopped at the deadline with the work done so far (see encoding.params)"
                 if stopped else ""),
        certificate={"valid": None, "checked": "nothing: a baseline map carries no mask"},
        masked_prediction={}, ig={},
        encoding={"params": a.params, "gradients": subject.model.gradient_paths(subject.x)},
        timings=stages.finish(), image=ImageParts(picture=subject.picture, saliency=a.map))
