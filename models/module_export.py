"""A torch module as an ONNX model for smug (the captum / zennit convention of passing the module).

:func:`module_onnx` exports a deep copy of the module (eval mode, the TorchScript exporter at opset
17, a dynamic batch) once, into the cache folder under a key of its class, its state dict's bytes,
the input shape and the torch version; the user's module is never touched (its mode, hooks, weights
and ``requires_grad`` flags stay as they are).  The encoders and the certificate read the ONNX file.
The copy (the module's *twin*: eval mode, frozen weights, on smug's torch device) is kept for the
file in this process (:func:`twin_of`, the last :data:`KEEP` modules), so that the gradients use the
module's own torch code with no ONNX round trip (:mod:`smug.models.module_direct`).
"""

from __future__ import annotations

import copy
import hashlib
import os
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

from smug.common import cache_dir
from smug.models.errors import ModelError

OPSET = 17
#: how many modules' twins a process keeps (the most recently explained ones)
KEEP = 2
_TWINS: "OrderedDict[str, object]" = OrderedDict()  # resolved ONNX path -> the module's twin
_TWINS_LOCK = threading.Lock()


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
    path = cache_dir() / "modules" / f"{module_key(module, shape)}.onnx"
    twin = _twin(module)
    if not path.is_file():
        _export(twin, shape, path)
    with _TWINS_LOCK:
        _TWINS[str(path.resolve())] = twin
        _TWINS.move_to_end(str(path.resolve()))
        while len(_TWINS) > KEEP:
            _TWINS.popitem(last=False)
    return path


def twin_of(path) -> object | None:
    """The twin of the module that :func:`module_onnx` exported to ``path`` in this process (None:
    the file is no module's export here, or its twin was dropped)."""
    with _TWINS_LOCK:
        return _TWINS.get(str(Path(path).resolve()))


def exported_model(path):
    """The model at ``path`` with its module's twin computing its gradients
    (:class:`~smug.models.module_direct.ModuleModel`), or None when ``path`` is no module's export here."""
    twin = twin_of(path)
    if twin is None:
        return None
    from smug.models.module_direct import ModuleModel

    return ModuleModel.with_twin(path, twin)


def _twin(module):
    """A deep copy of ``module`` in eval mode with frozen weights on smug's torch device (the user's
    module keeps its mode, device and flags)."""
    from smug.models.torch_backend import device

    twin = copy.deepcopy(module).eval().to(device())
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


def _export(twin, shape: tuple[int, ...], path: Path) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    where = next((t.device for t in [*twin.parameters(), *twin.buffers()]), torch.device("cpu"))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(twin, torch.zeros(1, *shape, device=where), str(tmp), input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
    except Exception as exc:  # the exporter's message, in one line
        tmp.unlink(missing_ok=True)
        raise ModelError(f"the module could not be exported to ONNX: {str(exc).splitlines()[0][:200]}") from None
    os.replace(tmp, path)
