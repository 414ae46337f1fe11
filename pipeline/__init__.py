"""smug.pipeline: the application layer every front end calls, and nothing below imports.

    >>> from smug.pipeline import ExplainRequest, run
    >>> e = run(ExplainRequest.build("cat.jpg", model="efficientnet-lite0", top_k=3000))
    >>> e.status, e.objective, e.certificate["valid"], e.to_json()["schema_version"]

One request type (:class:`ExplainRequest`, validated before any heavy work), one
:func:`run` for every modality and method, one :class:`Explanation`, one deadline
(:class:`Deadline`) and one isolation runner (:mod:`smug.isolation`).
"""

from smug.deadline import Deadline, DeadlineExceeded
from smug.pipeline.explanation import SCHEMA_VERSION, Explanation, ImageParts, MethodRow, TextParts, save_texts
from smug.pipeline.request import ExplainRequest, RequestError, with_request_parameters

_RUNNERS = ("Dump", "Encoded", "dump", "encode", "run")  # imported on first use: they load the model libraries


def __getattr__(name: str):
    if name in _RUNNERS:
        from smug.pipeline import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'smug.pipeline' has no attribute {name!r}")

__all__ = ["Deadline", "DeadlineExceeded", "Dump", "Encoded", "ExplainRequest", "Explanation", "ImageParts", "MethodRow",
           "RequestError", "SCHEMA_VERSION", "TextParts", "dump", "encode", "explain", "run", "save_texts"]


@with_request_parameters  # help(explain) lists ExplainRequest.build's parameters and the methods'
def explain(source=None, model="efficientnet-lite0", *, out_dir=None, progress=None, input_shape=None, **params):
    """One call: build the request from ``params`` (see :meth:`ExplainRequest.build`), run it,
    and write the files into ``out_dir`` when given.  ``model``: a zoo name, an ``.onnx`` path,
    an ``onnx.ModelProto`` or a ``torch.nn.Module`` with its ``input_shape`` (C, H, W) (exported to
    ONNX once; the module itself is not changed); ``source``: an image path, a model-space array (or
    a batch of them: then a list of explanations, ``out_dir/0``, ``out_dir/1``, ...), image bytes or
    None (the demo)."""
    from pathlib import Path

    from smug.pipeline.models import input_shape as declared_shape, model_reference
    from smug.pipeline.runner import run

    model = model_reference(model, input_shape)
    if hasattr(source, "ndim") and source.ndim == len(declared_shape(model)) + 1 and source.shape[0] != 1:
        return [explain(x, model, out_dir=None if out_dir is None else Path(out_dir) / str(i), progress=progress,
                        **params) for i, x in enumerate(source)]
    e = run(ExplainRequest.build(source, model, **params), progress=progress)
    if out_dir is not None:
        e.save(out_dir)
    return e
