"""onnxruntime itself: the module, its sessions (CUDA provider when present) and what a graph fixes
(its batch size).  Below the model wrapper (:mod:`smug.models.runtime`) and the torch copies
(:mod:`smug.models.torch_backend`), which both read it."""

from __future__ import annotations

import os

import onnx

from smug.models.errors import ModelError


def onnxruntime():
    """The onnxruntime module (``smug-explain[cpu]`` or ``[gpu]``: the two are alternatives)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError("no ONNX Runtime installed: pip install 'smug-explain[cpu]' (or '[gpu]' on a CUDA "
                         "machine, instead of cpu)") from None
    return ort


def providers() -> list[str]:
    """CUDA first when this onnxruntime has it, then the CPU."""
    ort = onnxruntime()
    available = ort.get_available_providers()
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in wanted if p in available] or available


def open_session(model: onnx.ModelProto):
    """An inference session of ``model`` (``SMUG_ORT_THREADS`` intra-op threads when set; quiet log)."""
    ort = onnxruntime()
    opts = ort.SessionOptions()
    threads = int(os.environ.get("SMUG_ORT_THREADS", "0"))
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=providers())


def fixed_batch(proto: onnx.ModelProto) -> int | None:
    """The first graph input's batch size when the graph fixes it, None when it is dynamic."""
    inits = {i.name for i in proto.graph.initializer}
    first = next((i for i in proto.graph.input if i.name not in inits), None)
    dims = first.type.tensor_type.shape.dim if first is not None else []
    if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
        return int(dims[0].dim_value)
    return None
