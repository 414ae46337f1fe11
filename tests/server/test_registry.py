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
