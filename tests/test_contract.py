"""One contract for every front end: the same request through the Python API, the CLI, a
real gRPC server and the CLI as that server's client gives the same identity, status,
objective, certificate verdict and JSON document."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("grpc")

from smug.pipeline import SCHEMA_VERSION, ExplainRequest, explain  # noqa: E402
from smug.pipeline.inputs import load_image  # noqa: E402

TEXT = "a gorgeous, funny and deeply moving film"
CASES = {  # name -> (model, keyword arguments of smug.pipeline.explain, CLI arguments)
    "first-layer": ("mnist-mlp", dict(top_k=20, window=1, timeout=30.0),
                    ["--top-k", "20", "--window", "1", "--timeout", "30"]),
    "whole-network": ("mnist-mlp", dict(method="whole-network", window=2, timeout=30.0),
                      ["--method", "whole-network", "--window", "2", "--timeout", "30"]),
    "text": ("text-cnn", dict(text=TEXT, timeout=30.0), ["--text", TEXT, "--timeout", "30"]),
    "baseline": ("mnist-mlp", dict(method="gradient"), ["--method", "gradient"]),
    "keep-class": ("mnist-mlp", dict(keep_class=True, timeout=30.0), ["--keep-class", "--timeout", "30"]),
}
SAME_VALUES = ("schema_version", "model", "input", "method", "request", "target", "target_name", "status",
               "objective", "lower_bound", "n_vars", "modality", "config", "keeps_class",
               "identity", "id_scheme", "input_sha256", "model_sha256")  # one request, one identity (issue 27)


@pytest.fixture(scope="module")
def remote():
    from smug.clients import Client
    from smug.server.config import ServerConfig
    from smug.server.main import start

    srv = start(ServerConfig(host="127.0.0.1", port=0, workers=1, inspect_zoo=False))
    try:
        with Client(f"127.0.0.1:{srv.port}") as client:
            yield client
    finally:
        srv.stop(grace=2)


def _cli(model: str, args: list[str], out) -> dict:
    r = subprocess.run([sys.executable, "-m", "smug", "explain", "--model", model, *args, "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    printed = json.loads(r.stdout)
    written = json.loads((out / "result.json").read_text())
    assert printed["status"] == written["status"] and printed["certificate_valid"] == written["certificate"]["valid"]
    return written


@pytest.mark.parametrize("case", list(CASES))
def test_api_cli_and_grpc_agree(case, remote, tmp_path):
    model, params, args = CASES[case]
    api = explain(None, model, **params)
    grpc_e = remote.explain(None, model, **params)
    documents = {"api": api.to_json(), "cli": _cli(model, args, tmp_path / "cli"), "grpc": grpc_e.to_json(),
                 "cli --server": _cli(model, [*args, "--server", remote.target], tmp_path / "remote")}
    for name, doc in documents.items():
        assert doc["schema_version"] == SCHEMA_VERSION, name
        assert set(doc) == set(documents["api"]), (name, set(doc) ^ set(documents["api"]))
        for key in SAME_VALUES:
            assert doc[key] == documents["api"][key], (name, key, doc[key], documents["api"][key])
        assert doc["certificate"]["valid"] == documents["api"]["certificate"]["valid"], name
    if case == "baseline":
        assert api.status == "map" and api.certificate["valid"] is None
        assert np.allclose(grpc_e.saliency, api.saliency, atol=1e-6)
        return
    assert api.status == "optimal" and api.certificate["valid"] is True
    if case == "keep-class":
        assert all(doc["keeps_class"] is True and doc["encoding"]["keep_class"]["kept"] for doc in documents.values())
        assert grpc_e.encoding["keep_class"]["constraints"] == api.encoding["keep_class"]["constraints"]
    for doc in documents.values():
        if case == "text":
            assert doc["text"]["rows"][0]["selected"] is not None and sum(doc["text"]["rows"][0]["selected"]) == \
                doc["objective"]
        else:
            assert len(doc["mask_blocks"]) == doc["objective"]
    if case == "whole-network":  # the mask keeps the class: a forward pass on the masked digit
        digit = load_image(ExplainRequest.build(None, "mnist-mlp"))
        for e in (api, grpc_e):
            masked = np.where(e.pixel_mask[None], digit.x, 0.0).astype(np.float32)
            assert int(digit.model.logits(masked[None])[0].argmax()) == e.target
