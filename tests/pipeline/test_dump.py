"""smug.pipeline.dump: every kind and format, a self-describing header, and the same rows as the IR."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import smug
from smug.debugging import read_dump
from smug.pipeline import ExplainRequest, dump, encode
from smug.pipeline.identity import SCHEME, identity
from smug.solver.exact import collapsed_rows

TEXT = "a gorgeous, funny film let down by a dull ending"
KINDS = {"first-layer": dict(input=None, model="mnist-mlp"),
         "whole-network": dict(input=None, model="mnist-mlp", method="whole-network"),
         "text": dict(input=None, model="text-cnn", text=TEXT)}


@pytest.fixture(scope="module")
def encoded():
    return {k: (ExplainRequest.build(**kw), encode(ExplainRequest.build(**kw))) for k, kw in KINDS.items()}


@pytest.mark.parametrize("kind", list(KINDS))
def test_header_describes_the_dump(encoded, kind, tmp_path):
    from smug.models.zoo import ZOO

    req, enc = encoded[kind]
    d = dump(req)
    meta = read_dump(_save(tmp_path, d)).meta
    assert meta == {**d.meta, "dump_version": 2}
    assert meta["kind"] == kind and meta["format"] == "smt2" and meta["smug_version"] == smug.__version__
    assert meta["model_sha256"] == hashlib.sha256(Path(ZOO[req.model].onnx_path()).read_bytes()).hexdigest()
    assert meta["identity"] == identity(req) and meta["id_scheme"] == SCHEME
    data = TEXT.encode() if kind == "text" else ZOO[req.model].demo_input.read_bytes()
    assert meta["input_sha256"] == hashlib.sha256(data).hexdigest()
    assert meta["target"] == enc.target and meta["n_vars"] == enc.problem.n_vars
    assert set(meta["variables"]) == set(enc.problem.var_names)
    assert meta["request"] == json.loads(json.dumps(req.to_json()))
    assert "gamma" in meta["params"] or "delta" in meta["params"]
    for line in ("model_sha256: ", "smug_version: ", "parameters: "):
        assert any(h.startswith(line) for h in d.header)
    if kind == "text":
        assert [meta["variables"][n]["text"] for n in enc.problem.var_names] == \
            ["a", "gorgeous", "funny", "film", "let", "down", "by", "a", "dull", "ending"]
    else:
        assert meta["variables"][enc.problem.var_names[1]]["block"] == [0, 1]


def _save(tmp_path, d):
    path = tmp_path / f"d.{d.format}"
    path.write_text(d.text)
    return path


@pytest.mark.parametrize("kind", ["first-layer", "text"])
def test_smt2_rows_are_the_ir_rows_exactly(encoded, kind, tmp_path):
    req, enc = encoded[kind]
    p = enc.problem
    parsed = read_dump(_save(tmp_path, dump(req)))
    rows = [(c, r) for c, r in collapsed_rows(p, np.arange(p.n_constraints)) if c]
    assert len(parsed.rows) == len(rows) > 0
    for row, (coef, r) in zip(parsed.rows, rows):
        assert row.r == r and row.coef == {p.var_names[j]: a for j, a in coef.items()}


@pytest.mark.parametrize("kind,fmts", [("first-layer", ("lp", "mps")), ("text", ("wcnf", "lp", "mps")),
                                       ("whole-network", ("lp", "mps"))])
def test_every_format_reads_back(encoded, kind, fmts, tmp_path):
    req, enc = encoded[kind]
    for fmt in fmts:
        d = dump(req, format=fmt)
        parsed = read_dump(_save(tmp_path, d))
        assert parsed.format == fmt and parsed.meta["kind"] == kind
        assert set(parsed.variables) <= set(enc.problem.var_names) and parsed.variables


def test_refusals(encoded):
    req, _ = encoded["whole-network"]
    with pytest.raises(ValueError, match="wcnf is written for first-layer and text"):
        dump(req, format="wcnf")
    with pytest.raises(ValueError, match="wcnf needs rows over at most 16"):
        dump(encoded["first-layer"][0], format="wcnf")
    with pytest.raises(ValueError, match="unknown dump format"):
        dump(req, format="cnf")
    with pytest.raises(ValueError, match="has no constraints to dump"):
        dump(ExplainRequest.build(None, "mnist-mlp", method="gradient"))
    assert "(assert (<= " in dump(req, bound=3).text
