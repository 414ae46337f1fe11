"""Models the service knows: the zoo (by name) and uploaded ONNX files, content-addressed.

An uploaded model is stored as ``<store>/<sha256>.onnx`` with its facts in
``<sha256>.json`` (input shape, classes, aliases), so a restarted server knows it
again, aliases included.  A model is found by its id (the sha256 of its bytes) or by an
alias: a zoo name, or a name given at upload.  An id only ever names the bytes it hashes
(a stored file whose bytes do not hash to its name is ignored at start), and a name never
shadows an id or a zoo name (:mod:`smug.server.upload`).  An upload is inspected in a
worker from a private file name; a request abandoned meanwhile registers nothing.  Zoo
entries are inspected on first use, so a server starts without exporting
EfficientNet-Lite0.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from smug.common import write_atomic
from smug.pipeline.models import zoo_catalog
from smug.proto.wire import ModelInfo
from smug.server.errors import ServiceError, invalid, shown
from smug.server.upload import check_alias, check_onnx, is_id


@dataclass(frozen=True)
class ModelRecord(ModelInfo):
    """A model the server knows, and where its worker loads it from (never sent to clients)."""

    source: str = ""  # a zoo name or the stored file's path


Inspect = Callable[[dict], dict]  # a worker job: {"source", "zoo"} -> facts
PERMANENT = ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "UNIMPLEMENTED")  # zoo failures cached till restart


class ModelRegistry:
    def __init__(self, store: Path, inspect: Inspect):
        self.store = Path(store)
        self._inspect = inspect
        self._lock = threading.Lock()
        self._zoo_locks = {name: threading.Lock() for name in _zoo_names()}
        self._by_id: dict[str, ModelRecord] = {}
        self._alias: dict[str, str] = {}
        self._zoo_failed: dict[str, ServiceError] = {}  # zoo name -> its permanent inspection failure
        for meta in sorted(self.store.glob("*.json")):
            rec = _stored(meta)
            if rec is not None:
                self._add(replace(rec, aliases=tuple(a for a in rec.aliases if self._alias_free(a, rec.id))))

    def _add(self, rec: ModelRecord) -> None:
        with self._lock:
            old = self._by_id.get(rec.id)
            if old is not None:
                rec = replace(old, aliases=tuple(dict.fromkeys(old.aliases + rec.aliases)))
            self._by_id[rec.id] = rec
            for a in rec.aliases:
                self._alias[a] = rec.id

    def _add_alias(self, rid: str, name: str) -> None:
        with self._lock:
            taken = self._alias.get(name, rid)
            if taken != rid:  # a concurrent upload took it meanwhile
                raise ServiceError("ALREADY_EXISTS", f"the alias {shown(name)} already names model {taken}")
            rec = self._by_id[rid]
            self._by_id[rid] = replace(rec, aliases=tuple(dict.fromkeys(rec.aliases + (name,))))
            self._alias[name] = rid

    def _alias_free(self, name: str, rid: str) -> bool:
        """Whether ``name`` may be an alias of model ``rid``: not id-shaped, not a zoo name, not another's."""
        try:
            check_alias(name, ())
        except ServiceError:
            return False
        with self._lock:
            return name not in zoo_catalog() and self._alias.get(name, rid) == rid

    # ---- look-ups ----------------------------------------------------------
    def resolve(self, name: str) -> ModelRecord:
        """The record for an id (only ever the bytes it hashes) or alias; NOT_FOUND otherwise."""
        zoo = zoo_catalog()

        if not name:
            raise invalid("no model given: pass a model id (sha256) or name")
        with self._lock:
            rec = self._by_id.get(name.lower()) if is_id(name) else self._by_id.get(self._alias.get(name, ""))
        if rec is not None:
            return rec
        if name in zoo:
            return self._zoo(name)
        raise ServiceError("NOT_FOUND", f"unknown model {shown(name)}: register it first or use one of {sorted(zoo)}")

    def _zoo(self, name: str) -> ModelRecord:
        zoo = zoo_catalog()

        with self._zoo_locks[name]:  # one inspection per zoo entry
            with self._lock:
                rid = self._alias.get(name)
            if rid is None:
                if name in self._zoo_failed:  # e.g. Lite0 without its extras: do not export again
                    failed = self._zoo_failed[name]
                    raise ServiceError(failed.code, failed.message)
                try:
                    facts = self._inspect({"source": name, "zoo": True})
                except ServiceError as exc:
                    if exc.code in PERMANENT:  # transient ones (busy, deadline, a dead worker) are retried
                        self._zoo_failed[name] = exc
                    raise
                self._add(ModelRecord(aliases=(name,), description=zoo[name].description, zoo=True, source=name,
                                      **{**facts, "input_shape": tuple(facts["input_shape"])}))
        return self.resolve(name)

    def inspect_zoo(self) -> None:
        """Inspect every zoo entry now (the server does this in the background at start, so
        that requests do not wait for it); failures are left for the first request to report."""
        for name in _zoo_names():
            try:
                self.resolve(name)
            except ServiceError:
                pass

    def list(self, include_zoo: bool = True) -> list[ModelRecord]:
        zoo = zoo_catalog()

        if include_zoo:
            for name in zoo:
                try:
                    self.resolve(name)
                except ServiceError:  # e.g. Lite0 without its extras: list the others
                    pass
        with self._lock:
            return sorted(self._by_id.values(), key=lambda r: (not r.zoo, r.aliases, r.id))

    # ---- uploads -----------------------------------------------------------
    def register(self, data: bytes, name: str = "", inspect: Inspect | None = None,
                 abandoned: Callable[[], bool] = lambda: False) -> ModelRecord:
        """Check, inspect (``inspect``: the caller's bounded worker job) and store an upload;
        nothing is stored when ``abandoned()`` turns true before the end."""
        zoo = zoo_catalog()

        if not data:
            raise invalid("the model is empty: send the ONNX file's bytes")
        if name:
            check_alias(name, zoo)
            if name in zoo:
                raise ServiceError("ALREADY_EXISTS", f"{shown(name)} is a zoo model name; choose another alias")
        check_onnx(data)
        sha = hashlib.sha256(data).hexdigest()
        with self._lock:
            taken = self._alias.get(name) if name else None
            known = self._by_id.get(sha)
        if taken is not None and taken != sha:
            raise ServiceError("ALREADY_EXISTS", f"the alias {shown(name)} already names model {taken}")
        if known is None:
            self._inspect_upload(data, sha, inspect or self._inspect, abandoned)
        if name:
            self._add_alias(sha, name)
        self._save(sha)
        return self.resolve(sha)

    def _inspect_upload(self, data: bytes, sha: str, inspect: Inspect, abandoned: Callable[[], bool]) -> None:
        uploads = self.store / ".uploads"
        uploads.mkdir(exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=uploads)  # private to this upload: no pid, no shared name
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                facts = inspect({"source": str(tmp), "zoo": False})
            except ServiceError as exc:
                raise ServiceError(exc.code, exc.message.replace(str(tmp), "the model")) from None
            if facts.get("id") != sha:
                raise ServiceError("INTERNAL", "the stored upload changed while it was inspected")
            if abandoned():
                raise ServiceError("CANCELLED", "the request ended before the upload was inspected; nothing was stored")
            final = self.store / f"{sha}.onnx"
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        self._add(ModelRecord(aliases=(), description="uploaded ONNX model", zoo=False, source=str(final),
                              **{**facts, "input_shape": tuple(facts["input_shape"])}))

    def _save(self, sha: str) -> None:
        """Write a model's facts and aliases beside it (atomically), so a restart knows both."""
        with self._lock:
            rec = self._by_id[sha]
        meta = {k: v for k, v in asdict(rec).items() if k != "source"}
        write_atomic(self.store / f"{sha}.json", json.dumps(meta).encode())


def _stored(meta: Path) -> ModelRecord | None:
    """The record of a stored model, or None for a foreign, damaged or mismatched file (its bytes
    must hash to its name: an id names only the bytes it hashes)."""
    onnx_path = meta.with_suffix(".onnx")
    try:
        fields = json.loads(meta.read_text())
        rec = ModelRecord(**{**fields, "source": str(onnx_path)})
        digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    except (TypeError, ValueError, OSError):
        return None
    if not (rec.id == meta.stem == digest) or rec.zoo:
        return None
    return replace(rec, input_shape=tuple(rec.input_shape), aliases=tuple(str(a) for a in rec.aliases))


def _zoo_names() -> list[str]:
    zoo = zoo_catalog()

    return list(zoo)
