"""The model registry: zoo inspections run once, permanent failures are remembered."""

from __future__ import annotations

import pytest

from smug.server.errors import ServiceError
from smug.server.registry import ModelRegistry


def _registry(tmp_path, code: str):
    calls: list[dict] = []

    def inspect(payload: dict) -> dict:
        calls.append(payload)
        raise ServiceError(code, f"cannot inspect {payload['source']}")

    return ModelRegistry(tmp_path, inspect), calls


def test_a_permanent_zoo_failure_is_cached(tmp_path):
    reg, calls = _registry(tmp_path, "INVALID_ARGUMENT")  # e.g. Lite0 without its extras
    for _ in range(3):
        with pytest.raises(ServiceError) as err:
            reg.resolve("efficientnet-lite0")
        assert err.value.code == "INVALID_ARGUMENT" and "efficientnet-lite0" in err.value.message
    reg.list()  # listing does not inspect it again either
    assert [c["source"] for c in calls].count("efficientnet-lite0") == 1


def test_a_transient_zoo_failure_is_retried(tmp_path):
    reg, calls = _registry(tmp_path, "RESOURCE_EXHAUSTED")  # a busy server: the next request tries again
    for _ in range(2):
        with pytest.raises(ServiceError):
            reg.resolve("mnist-mlp")
    assert [c["source"] for c in calls].count("mnist-mlp") == 2


def _facts(payload: dict) -> dict:
    """A fake worker inspection: the facts of the file at ``payload['source']``."""
    import hashlib
    from pathlib import Path

    data = Path(payload["source"]).read_bytes()
    return {"id": hashlib.sha256(data).hexdigest(), "input_shape": [1, 8, 8], "n_classes": 3,
            "size_bytes": len(data), "whole_network": True, "kind": "image"}


def test_aliases_survive_a_restart_and_an_id_names_only_its_bytes(tmp_path, nets):
    import json

    reg = ModelRegistry(tmp_path, _facts)
    a, b = nets.tiny(seed=1), nets.tiny(seed=2)
    ra = reg.register(a, "first")
    assert reg.register(a, "second").id == ra.id  # an alias added by re-registering the same bytes
    rb = reg.register(b, "bee")
    again = ModelRegistry(tmp_path, _facts)
    assert set(again.resolve(ra.id).aliases) == {"first", "second"}
    assert again.resolve("second").id == ra.id and again.resolve("bee").id == rb.id
    # a store edited behind the server's back: B's facts claim A's id and alias, an id-shaped and a zoo alias
    meta = json.loads((tmp_path / f"{rb.id}.json").read_text())
    (tmp_path / f"{rb.id}.json").write_text(json.dumps({**meta, "aliases": ["bee", ra.id, "mnist-mlp", "first"]}))
    (tmp_path / f"{ra.id}.json").write_text(json.dumps({**meta, "id": ra.id}))
    (tmp_path / f"{ra.id}.onnx").write_bytes(b)  # A's file replaced by B's bytes: no longer A
    third = ModelRegistry(tmp_path, _facts)
    with pytest.raises(ServiceError) as err:
        third.resolve(ra.id)
    assert err.value.code == "NOT_FOUND"
    assert third.resolve(rb.id).aliases == ("bee", "first")


def test_names_never_shadow_ids_or_zoo_names(tmp_path, nets):
    reg = ModelRegistry(tmp_path, _facts)
    a = reg.register(nets.tiny(seed=1), "a")
    for name in (a.id, a.id.upper(), "f" * 64):
        with pytest.raises(ServiceError) as err:
            reg.register(nets.tiny(seed=3), name)
        assert err.value.code == "INVALID_ARGUMENT" and "model id" in err.value.message
    with pytest.raises(ServiceError) as err:
        reg.register(nets.tiny(seed=3), "mnist-mlp")
    assert err.value.code == "ALREADY_EXISTS"
    for name in ("x" * 129, "tab\there", "   "):
        with pytest.raises(ServiceError) as err:
            reg.register(nets.tiny(seed=3), name)
        assert err.value.code == "INVALID_ARGUMENT" and len(err.value.message) < 200
    assert reg.resolve(a.id.upper()).id == a.id


def test_an_abandoned_upload_stores_nothing(tmp_path, nets):
    reg = ModelRegistry(tmp_path, _facts)
    with pytest.raises(ServiceError) as err:
        reg.register(nets.tiny(seed=4), "late", abandoned=lambda: True)
    assert err.value.code == "CANCELLED"
    assert not list(tmp_path.glob("*.onnx")) and not list((tmp_path / ".uploads").iterdir())
    with pytest.raises(ServiceError):
        reg.resolve("late")
