"""A torch module as an ONNX model for smug (the captum / zennit convention of passing the module).

:func:`module_onnx` exports a deep copy of the module (eval mode, the TorchScript exporter at opset
17, a dynamic batch) once, into the cache folder under a key of its class, its state dict's bytes,
the input shape and the torch version; the user's module is never touched (its mode, hooks and
weights stay as they are).  Everything after that -- the encoders, the certificate, the gradients
(the checked torch copy of :func:`smug.models.torch_backend.convert`) -- reads the ONNX file.
"""

from __future__ import annotations

import copy
import hashlib
import os
import warnings
from pathlib import Path

from smug.common import cache_dir
from smug.models.errors import ModelError

OPSET = 17


def is_module(model) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (without importing torch when it is not loaded)."""
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def module_key(module, input_shape: tuple[int, ...]) -> str:
    """sha256 of the module's class, state dict (names, dtypes, shapes, bytes), input shape and torch version."""
    import torch

    h = hashlib.sha256(f"{type(module).__module__}.{type(module).__qualname__}|{tuple(input_shape)}|"
                       f"{torch.__version__}|opset{OPSET}".encode())
    for name, value in module.state_dict().items():
        t = value.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def module_onnx(module, input_shape) -> Path:
    """The ONNX file of ``module`` for inputs ``(N, *input_shape)`` (exported on first use, see the
    module docstring).  Errors (no input shape, an export the exporter refuses) are one line."""
    if input_shape is None:
        raise ModelError("a torch module needs input_shape=(C, H, W) (without the batch dimension)")
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ModelError(f"input_shape must be a tuple of sizes, got {input_shape!r}") from None
    if not shape or min(shape) < 1:
        raise ModelError(f"input_shape must be positive sizes, got {input_shape!r}")
    import torch

    path = cache_dir() / "modules" / f"{module_key(module, shape)}.onnx"
    if path.is_file():
        return path
    twin = copy.deepcopy(module).cpu().eval()  # the user's module keeps its mode and device
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(twin, torch.zeros(1, *shape), str(tmp), input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                              dynamo=False)
    except Exception as exc:  # the exporter's message, in one line
        tmp.unlink(missing_ok=True)
        raise ModelError(f"the module could not be exported to ONNX: {str(exc).splitlines()[0][:200]}") from None
    os.replace(tmp, path)
    return path
