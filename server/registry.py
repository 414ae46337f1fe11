"""Models the service knows: the zoo (by name) and uploaded ONNX files, content-addressed.

An uploaded model is stored as ``<store>/<sha256>.onnx`` with its facts in
``<sha256>.json`` (input shape, classes, aliases), so a restarted server knows it
again.  A model is found by its id (the sha256 of its bytes) or by an alias: a zoo
name, or the name given at upload.  Zoo entries are inspected (in a worker) on first
use, so a server starts without exporting EfficientNet-Lite0.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from smug.pipeline.models import zoo_catalog
from smug.proto.wire import ModelInfo
from smug.server.errors import ServiceError, invalid


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
            try:
                rec = ModelRecord(**{**json.loads(meta.read_text()), "source": str(meta.with_suffix(".onnx"))})
            except (TypeError, ValueError):
                continue  # a foreign or damaged file: ignore it
            if Path(rec.source).is_file():
                self._add(replace(rec, input_shape=tuple(rec.input_shape), aliases=tuple(rec.aliases)))

    def _add(self, rec: ModelRecord) -> None:
        with self._lock:
            old = self._by_id.get(rec.id)
            if old is not None:
                rec = replace(old, aliases=tuple(dict.fromkeys(old.aliases + rec.aliases)))
            self._by_id[rec.id] = rec
            for a in rec.aliases:
                self._alias[a] = rec.id

    # ---- look-ups ----------------------------------------------------------
    def resolve(self, name: str) -> ModelRecord:
        """The record for an id or alias; NOT_FOUND otherwise."""
        zoo = zoo_catalog()

        if not name:
            raise invalid("no model given: pass a model id (sha256) or name")
        with self._lock:
            rid = self._alias.get(name, name)
            rec = self._by_id.get(rid)
        if rec is not None:
            return rec
        if name in zoo:
            return self._zoo(name)
        raise ServiceError("NOT_FOUND", f"unknown model {name!r}: register it first or use one of {sorted(zoo)}")

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
    def register(self, data: bytes, name: str = "") -> ModelRecord:
        zoo = zoo_catalog()

        if not data:
            raise invalid("the model is empty: send the ONNX file's bytes")
        if name and name in zoo:
            raise ServiceError("ALREADY_EXISTS", f"{name!r} is a zoo model name; choose another alias")
        sha = hashlib.sha256(data).hexdigest()
        with self._lock:
            taken = self._alias.get(name) if name else None
            known = self._by_id.get(sha)
        if taken is not None and taken != sha:
            raise ServiceError("ALREADY_EXISTS", f"the alias {name!r} already names model {taken}")
        if known is not None:
            if name:
                self._add(replace(known, aliases=(name,)))
            return self.resolve(sha)
        final = self.store / f"{sha}.onnx"
        tmp = self.store / f".{sha}.{os.getpid()}.{threading.get_ident()}.upload"
        tmp.write_bytes(data)
        try:
            facts = self._inspect({"source": str(tmp), "zoo": False})
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        rec = ModelRecord(aliases=(name,) if name else (), description="uploaded ONNX model", zoo=False,
                          source=str(final), **{**facts, "input_shape": tuple(facts["input_shape"])})
        self._add(rec)
        rec = self.resolve(sha)
        meta = {k: v for k, v in asdict(rec).items() if k != "source"}
        tmp_meta = self.store / f".{sha}.json.tmp"
        tmp_meta.write_text(json.dumps(meta))
        os.replace(tmp_meta, self.store / f"{sha}.json")
        return rec


def _zoo_names() -> list[str]:
    zoo = zoo_catalog()

    return list(zoo)
