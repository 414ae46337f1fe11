"""The upload sandbox: what a client-chosen name and an uploaded ONNX file may be, checked
in the server process before any worker opens the file.

* A model id is the sha256 of the model's bytes and names nothing else: a name that looks
  like an id (64 hex digits), a zoo name, or a name with control characters is refused.
* An upload must be self-contained: no tensor may keep its data in an external file
  (``onnx.save(..., save_as_external_data=False)`` inlines them), wherever the tensor hides
  (initializers, node attributes of one or several dense or sparse tensors, the graphs of
  ``training_info``, subgraphs), so an upload can never read another model in the store or
  any other file of the server, nor learn through a checker's error whether a file exists.
* Control flow (subgraph attributes: ``Loop``, ``If``, ``Scan``), model-local functions and
  operators outside the standard ONNX domains are refused: no method of smug reads them.
"""

from __future__ import annotations

import re

from onnx import ModelProto, TensorProto
from google.protobuf.message import DecodeError

from smug.server.errors import invalid, shown

MAX_NAME = 128  # characters of a model alias
ID = re.compile(r"[0-9a-fA-F]{64}")
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


def is_id(name: str) -> bool:
    """Whether ``name`` has the form of a model id (a sha256 in hex)."""
    return ID.fullmatch(name) is not None


def check_alias(name: str, zoo_names) -> None:
    """A name a client may give an upload: INVALID_ARGUMENT otherwise (zoo names: ALREADY_EXISTS, by the caller)."""
    if len(name) > MAX_NAME:
        raise invalid(f"the model name {shown(name)} is too long: at most {MAX_NAME} characters")
    if not name.strip() or any(not c.isprintable() for c in name):
        raise invalid(f"the model name {shown(name)} is blank or has control characters")
    if is_id(name):
        raise invalid(f"the model name {shown(name)} looks like a model id (64 hex digits); "
                      "ids are the sha256 of a model's bytes and cannot be chosen")


def check_onnx(data: bytes) -> None:
    """Refuse an upload that is not a self-contained ONNX model of standard operators."""
    model = ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError):
        raise invalid("the upload is not a valid ONNX model (its bytes do not parse as an ONNX ModelProto)") from None
    if not model.HasField("graph") or not model.graph.node:
        raise invalid("the upload is not a valid ONNX model: it has no graph nodes")
    if len(model.functions):
        raise invalid("the upload defines model-local functions; only standard ONNX operators are supported")
    for tensor in _tensors(model):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
            raise invalid(f"tensor {shown(tensor.name)} keeps its data in an external file; uploads must be "
                          "self-contained (save with onnx.save(model, path, save_as_external_data=False))")
    for node in model.graph.node:
        if node.domain not in STANDARD_DOMAINS:
            raise invalid(f"operator {shown(node.op_type)} of domain {shown(node.domain)} is not a standard ONNX "
                          "operator; custom operators are not supported")
        if any(a.HasField("g") or len(a.graphs) for a in node.attribute):
            raise invalid(f"operator {shown(node.op_type)} has a subgraph (control flow); smug reads feed-forward "
                          "classifiers only")


def _tensors(model: ModelProto):
    """Every tensor of every graph the file holds (:func:`_graphs`): initializers (dense and sparse)
    and tensor-valued node attributes (one tensor or several, dense or sparse)."""
    for g in _graphs(model):
        yield from g.initializer
        for sparse in g.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                for sparse in ([a.sparse_tensor] if a.HasField("sparse_tensor") else []) + list(a.sparse_tensors):
                    yield sparse.values
                    yield sparse.indices


def _graphs(model: ModelProto):
    """The main graph, the graphs of its ``training_info`` (initialization and algorithm; smug never
    runs them, but ONNX tools read them) and every subgraph inside any of these."""
    todo = [model.graph]
    for info in model.training_info:
        todo += [info.initialization, info.algorithm]
    while todo:
        g = todo.pop()
        yield g
        for node in g.node:
            for a in node.attribute:
                todo += ([a.g] if a.HasField("g") else []) + list(a.graphs)
