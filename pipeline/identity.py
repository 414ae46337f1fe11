"""A request's identity: the one digest that says two requests ask the same question.

:func:`identity` is the sha256 of a canonical JSON document (:func:`canonical`) built from
the fields of :class:`~smug.pipeline.request.ExplainRequest` and, recursively, of its method
config, keep-class options and preprocessing (``dataclasses.fields``: nothing is listed by
hand, so a field added to any of them joins the identity by itself).  Two fields are
replaced by content hashes:

* ``input``: its kind and :func:`input_sha256` (an image file's or upload's bytes, an
  array's float64 C-order bytes, a text's UTF-8 bytes, a zoo model's demo file), so the same
  photo under two paths or names is one request;
* ``model``: :func:`model_identity`, ``zoo:<name>`` for a zoo model (pinned by the smug
  release, so it need not be exported to be named) or the sha256 of the ONNX file's bytes;
  a text model outside the zoo adds its tokenizer (the ``.json`` beside it).  An image
  model's neighbour files do not count: the server's registry keeps its own metadata
  (aliases) there, and adding an alias changes no answer.

Fields marked ``metadata=LABEL`` (a job's name) name a request without changing its answer
and are left out.  Numbers have one spelling (``0`` and ``0.0`` are one parameter) and a
config's class is named, so two methods' configs never collide.  The document also holds
:data:`SCHEME` and the smug version: a new scheme (or release) gives every request a new
identity, and stores written under an older one stay readable but are not reused.

Farm job ids, server batch ids and their merging of repeated requests, ``result.json``
and dump headers all use this digest; the last two also carry :func:`input_sha256` and
:func:`model_sha256` (:func:`bound_to`), which ``smug check`` compares.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from smug.pipeline.request import LABEL, ArrayInput, DemoInput, ImageBytes, ImageFile, Input, TextInput, zoo_kind

SCHEME = 2  # 1: farm job ids of smug <= 0.1.0 (a hand-written list of fields); 2: this module
DISTRIBUTION = "smug-explain"


@lru_cache(maxsize=1)
def smug_version() -> str:
    """The installed smug version (part of every identity; read once per process)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def identity(request) -> str:
    """The sha256 (hex) of ``request``'s canonical JSON (:func:`canonical`)."""
    text = json.dumps(canonical(request), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def canonical(request) -> dict:
    """The document :func:`identity` hashes: every field of the request but its labels, with the
    input and the model as content hashes, plus the id scheme and the smug version."""
    doc = {"scheme": SCHEME, "smug": smug_version()}
    for f in dataclasses.fields(request):
        if f.metadata == LABEL:
            continue
        value = getattr(request, f.name)
        if f.name == "input":
            doc[f.name] = {"kind": input_kind(value), "sha256": input_sha256(value, request.model)}
        elif f.name == "model":
            doc[f.name] = model_identity(value, request.modality)
        else:
            doc[f.name] = plain(value)
    return doc


def plain(value: Any) -> Any:
    """``value`` as canonical JSON data: dataclasses as their non-label fields (and class name),
    tuples as lists, integral floats as ints, infinities as ``"inf"``/``"-inf"`` (robust's epsilon),
    numpy scalars as Python ones."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)
               if f.metadata != LABEL}
        return {"@": type(value).__name__, **out}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return plain(value.item())
    if isinstance(value, float) and math.isinf(value):
        return repr(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ---- content hashes ----------------------------------------------------------------------
def input_kind(source: Input) -> str:
    """``image`` (a file or uploaded bytes: the same bytes are one input), ``array``, ``text`` or ``demo``."""
    if isinstance(source, (ImageFile, ImageBytes)):
        return "image"
    if isinstance(source, ArrayInput):
        return "array"
    if isinstance(source, TextInput):
        return "text"
    if isinstance(source, DemoInput):
        return "demo"
    raise TypeError(f"unsupported input {type(source).__name__}")


def input_sha256(source: Input, model: str) -> str:
    """The sha256 of an input's content: an image file's or upload's bytes, an array's float64
    C-order bytes, a text's UTF-8 bytes, the zoo ``model``'s demo file (for its demo input).
    ``result.json`` and dump headers carry it as ``input_sha256``."""
    if isinstance(source, ImageFile):
        return file_sha256(source.path)
    if isinstance(source, ImageBytes):
        return hashlib.sha256(source.data).hexdigest()
    if isinstance(source, ArrayInput):
        return hashlib.sha256(np.ascontiguousarray(source.array, dtype=np.float64).tobytes()).hexdigest()
    if isinstance(source, TextInput):
        return hashlib.sha256(source.text.encode("utf-8")).hexdigest()
    input_kind(source)  # refuses anything else
    from smug.models.zoo import ZOO

    entry = ZOO.get(model)
    return file_sha256(entry.demo_input) if entry is not None else hashlib.sha256(b"").hexdigest()


def model_identity(model: str, modality: str) -> str:
    """``zoo:<name>`` for a zoo model, ``onnx:<sha256 of the file>`` for an ONNX file, with
    ``+tokenizer:<sha256>`` for a text model outside the zoo (the ``.json`` beside it)."""
    if zoo_kind(model) is not None:
        return f"zoo:{model}"
    out = "onnx:" + file_sha256(model)
    tokenizer = Path(model).with_suffix(".json")
    if modality == "text" and tokenizer.is_file():
        out += "+tokenizer:" + file_sha256(tokenizer)
    return out


def model_sha256(model: str) -> str:
    """The sha256 of the model's ONNX file (a zoo model's export): ``result.json`` and dump
    headers carry it as ``model_sha256``, so ``smug check`` can tell two models apart."""
    from smug.models.zoo import ZOO

    entry = ZOO.get(model)
    return file_sha256(entry.onnx_path() if entry is not None else model)


def bound_to(request) -> dict:
    """What binds an answer to ``request``: its identity, id scheme, input's and model's sha256."""
    return {"identity": identity(request), "id_scheme": SCHEME,
            "input_sha256": input_sha256(request.input, request.model), "model_sha256": model_sha256(request.model)}


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (cached by path, size and modification time)."""
    st = os.stat(path)
    return _file_sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=4096)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
