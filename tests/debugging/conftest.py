"""Real dumps and results of the three small problem kinds, made once per session."""

from __future__ import annotations

import json

import pytest

TEXT = "a gorgeous, funny film let down by a dull ending"
REQUESTS = {
    "first-layer": dict(input=None, model="mnist-mlp"),
    "whole-network": dict(input=None, model="mnist-mlp", method="whole-network"),
    "text": dict(input=None, model="text-cnn", text=TEXT),
}
FORMATS = {"first-layer": ("smt2", "lp", "mps"), "whole-network": ("smt2", "lp"), "text": ("smt2", "wcnf", "lp")}


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory):
    """{kind: {"result": path, "smt2": path, ...}} for the bundled digit, the digit's whole network and a text."""
    from smug.pipeline import ExplainRequest, dump, run

    root = tmp_path_factory.mktemp("dumps")
    out = {}
    for kind, kw in REQUESTS.items():
        req = ExplainRequest.build(**kw, timeout=30)
        e = run(req)
        assert e.status == "optimal", (kind, e.status)
        paths = {"result": root / f"{kind}.json"}
        paths["result"].write_text(json.dumps(e.to_json()))
        for fmt in FORMATS[kind]:
            paths[fmt] = root / f"{kind}.{fmt}"
            paths[fmt].write_text(dump(req, format=fmt).text)
        out[kind] = paths
    return out
