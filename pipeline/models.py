"""What smug can do with a model: facts for registries (the server's, a farm's) and clients.

The encoders say what they support (:func:`smug.encoders.network.unsupported_ops`,
:func:`smug.encoders.first_layer.find_first_layer`); this module only asks them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from smug.models.errors import InputError, ModelError
from smug.models.preprocess import check_array
from smug.models.zoo import ZOO

if TYPE_CHECKING:  # the model libraries (onnx, onnxruntime) load where a model is read, not on import
    from smug.models.runtime import OnnxModel


@dataclass(frozen=True)
class ModelFacts:
    id: str  # sha256 of the ONNX bytes
    input_shape: tuple[int, ...]
    n_classes: int
    size_bytes: int
    whole_network: bool  # the whole network can be encoded (method "whole-network")
    kind: str  # "image" or "text"


def model_facts(source: str, zoo: bool) -> ModelFacts:
    """Facts of a zoo entry (trusted: its declared output gives the classes) or of an ONNX file
    (run once through onnxruntime, its first layer extracted); :class:`ModelError` if unusable."""
    from smug.encoders.network import unsupported_ops
    from smug.models.runtime import OnnxModel

    if zoo:
        entry = ZOO[source]
        path, kind = entry.onnx_path(), entry.kind
        model = OnnxModel.load(path, name=entry.name)
        classes = 1 if kind == "text" else _declared_classes(model)
    else:
        path, kind = source, "image"
        model = OnnxModel.load(path)
        classes = None
    if classes is None:
        classes = _checked_classes(model)
    with open(path, "rb") as f:
        data = f.read()
    whole = kind == "image" and not unsupported_ops(model)
    return ModelFacts(hashlib.sha256(data).hexdigest(), tuple(model.input_shape), int(classes), len(data), whole, kind)


def _declared_classes(model: OnnxModel) -> int | None:
    dims = model.proto.graph.output[0].type.tensor_type.shape.dim
    return int(dims[1].dim_value) if len(dims) == 2 and dims[1].HasField("dim_value") else None


def _checked_classes(model: OnnxModel) -> int:
    """Run the model once and extract its first layer; the number of classes."""
    from smug.encoders.first_layer import UnsupportedModel, find_first_layer

    try:
        logits = model.logits(np.zeros((1, *model.input_shape), np.float32))
    except ModelError:
        raise
    except Exception:  # onnxruntime's own error types
        raise ModelError("onnxruntime cannot run the model on a zero input of its declared shape") from None
    if logits.ndim != 2:
        raise ModelError(f"the model output must be (batch, classes) logits, got shape {logits.shape}")
    try:
        find_first_layer(model)
    except UnsupportedModel as exc:
        raise ModelError(f"unsupported first layer: {exc}") from None
    return int(logits.shape[1])


def check_model_input(x: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
    """A model-space array for a model of ``input_shape`` (a batch of one allowed): shape, finite."""
    x = np.asarray(x)
    if x.shape == (1, *input_shape):
        x = x[0]
    return check_array(x, input_shape)


__all__ = ["InputError", "ModelError", "ModelFacts", "check_model_input", "model_facts"]


@dataclass(frozen=True)
class ZooModel:
    name: str
    description: str
    kind: str  # "image" or "text"


def zoo_catalog() -> dict[str, ZooModel]:
    """The zoo's models by name (nothing is loaded or exported)."""
    return {name: ZooModel(name, e.description, e.kind) for name, e in ZOO.items()}


def read_text_lines(path: str) -> list[str]:
    """Non-empty lines of a UTF-8 file, one text each (bad bytes: an error naming the line)."""
    from smug.models.text_cnn import read_lines

    return read_lines(path)


def model_reference(model, input_shape=None) -> str:
    """A model as a request names it: zoo names and paths as they are; an ``onnx.ModelProto`` is
    stored once by the sha256 of its bytes in the cache folder and named by that path; a
    ``torch.nn.Module`` (with ``input_shape``) is exported once (:func:`smug.models.module_export.module_onnx`)."""
    from smug.models.module_export import is_module, module_onnx

    if is_module(model):
        return str(module_onnx(model, input_shape))
    if isinstance(model, str):
        return model
    if hasattr(model, "SerializeToString") and hasattr(model, "graph"):
        from smug.common import cache_dir, write_atomic

        data = model.SerializeToString()
        path = cache_dir() / "models" / f"{hashlib.sha256(data).hexdigest()}.onnx"
        if not path.is_file():
            write_atomic(path, data)
        return str(path)
    if hasattr(model, "__fspath__"):
        return str(model)
    raise ModelError(f"a model is a zoo name, an .onnx path, an onnx.ModelProto or a torch module, not "
                     f"{type(model).__name__} "
                     f"(an InferenceSession does not keep its graph: pass the file it was made from)")


def input_shape(model: str) -> tuple[int, ...]:
    """The model's declared input shape without the batch dimension."""
    from smug.models.zoo import load_model

    return tuple(load_model(model)[0].input_shape)
