"""A farm job: one validated request and its stable id.

The id is the sha256 of a canonical JSON document holding

* the input's content: the sha256 of an image file's (or an upload's) bytes, of an
  array's dtype, shape and bytes, of a text's UTF-8 bytes, or ``"demo"`` for a zoo
  model's bundled input;
* the model: ``onnx:<sha256 of the file>`` (plus its tokenizer ``.json`` for a text
  model) for a user's ONNX file, ``zoo:<name>`` for a zoo model.  A zoo model is pinned
  by the smug release (its ONNX ships with it or is exported from pinned weights on
  first use), so its name plus the smug version identifies it without exporting it;
* the method, its full configuration (defaults filled in, so ``top_k`` left out and
  ``top_k=3000`` are one job), backend, target and solver timeout;
* the smug version.

The job name and the input's path are labels, not part of the id: the same photo under
two names is one job.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np

from smug.pipeline import ExplainRequest
from smug.pipeline.request import ArrayInput, DemoInput, ImageBytes, ImageFile, TextInput, zoo_kind

DISTRIBUTION = "smug-explain"


@dataclass(frozen=True)
class Job:
    """One request of a batch, with its id and where it came from (a manifest line)."""

    id: str
    request: ExplainRequest
    line: int | None = None  # 1-based line (or row) of the manifest

    @property
    def name(self) -> str | None:
        return self.request.name


@lru_cache(maxsize=1)
def smug_version() -> str:
    """The installed smug version (part of every job id; read once per process)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def job_of(request: ExplainRequest | Job, line: int | None = None) -> Job:
    """``request`` as a :class:`Job` (a job is returned as it is)."""
    if isinstance(request, Job):
        return request
    return Job(job_id(request), request, line)


def job_id(request: ExplainRequest) -> str:
    """The stable id of ``request`` (see the module's docstring)."""
    doc = {"smug": smug_version(), "input": input_digest(request.input), "model": model_identity(request.model),
           "method": request.method, "modality": request.modality, "config": _canonical(asdict(request.config)),
           "backend": request.backend, "target": request.target, "timeout": _canonical(request.timeout)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def input_digest(source) -> str:
    """The sha256 of an input's content (``"demo"`` for the zoo's demo input)."""
    if isinstance(source, DemoInput):
        return "demo"
    if isinstance(source, ImageFile):
        return "image:" + file_sha256(source.path)
    if isinstance(source, ImageBytes):
        return "image:" + hashlib.sha256(source.data).hexdigest()
    if isinstance(source, TextInput):
        return "text:" + hashlib.sha256(source.text.encode("utf-8")).hexdigest()
    if isinstance(source, ArrayInput):
        a = np.ascontiguousarray(source.array)
        head = f"{a.dtype.str}{a.shape}".encode()
        return "array:" + hashlib.sha256(head + a.tobytes()).hexdigest()
    raise TypeError(f"unsupported input {type(source).__name__}")


def model_identity(model: str) -> str:
    """``zoo:<name>`` for a zoo model, ``onnx:<sha256>`` for an ONNX file (with its tokenizer, if any)."""
    if zoo_kind(model) is not None:
        return f"zoo:{model}"
    sidecar = Path(model).with_suffix(".json")
    extra = "+" + file_sha256(sidecar) if sidecar.is_file() else ""
    return "onnx:" + file_sha256(model) + extra


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


def _canonical(value):
    """Numbers in one spelling (``0`` and ``0.0`` are the same parameter), tuples as lists."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value
