"""A request's identity (smug.pipeline.identity): every field that can change an answer changes it.

The property test walks the dataclass fields of ExplainRequest and, recursively, of every
method's config, the keep-class options, the preprocessing and the input (``dataclasses.fields``,
so a field added tomorrow is covered by itself), changes one field at a time and checks that
the identity changes; fields marked as labels must not change it."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import typing
from pathlib import Path

import numpy as np
import pytest

from smug.encoders.config import NetworkConfig, SmugConfig, TextSmugConfig
from smug.models.preprocess import ImagePreprocess
from smug.pipeline import ExplainRequest
from smug.pipeline.identity import SCHEME, canonical, identity
from smug.pipeline.keep_class import KeepClass
from smug.pipeline.request import LABEL, ArrayInput, BaselineConfig, ImageBytes, ImageFile, TextInput, TextOptions


def _sample(tp):
    """A value of type ``tp`` (the first non-None member of a union; a dataclass with its required fields)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, getattr(__import__("types"), "UnionType")):
        return _sample(args[0])
    if typing.get_origin(tp) is tuple:
        return (_sample(args[0]),)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return tp(**{f.name: _sample(hints[f.name]) for f in dataclasses.fields(tp)
                     if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING})
    return {bool: True, int: 7, float: 0.25, str: "x", dict: {"steps": 3}}[tp]


def _other(name: str, value, tp):
    """Another value than ``value`` for the field ``name`` of type ``tp`` (unvalidated: identity reads fields)."""
    if name == "model":  # a model is named by content: another zoo model
        return "mnist-cnn" if value != "mnist-cnn" else "mnist-mlp"
    if value is None:
        return _sample(tp)
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value * 2 + 1
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, tuple):
        return value[:-1] if len(value) > 1 else value + value
    if isinstance(value, dict):
        return {**value, "other": 1}
    if isinstance(value, np.ndarray):
        return value + 1
    raise AssertionError(f"no other value for {name} = {value!r}")


def _with(obj, name: str, value):
    """``obj`` with one field set, its checks skipped (the identity reads fields, whatever their values)."""
    new = copy.copy(obj)
    object.__setattr__(new, name, value)
    return new


def mutations(obj, path: str = ""):
    """(field path, ``obj`` with that one field changed) for every non-label field, recursively; and
    the label fields' paths with ``obj`` relabelled (the identity must not move)."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, where = getattr(obj, f.name), f"{path}{f.name}"
        if f.metadata == LABEL:
            yield where, _with(obj, f.name, _other(f.name, value, hints[f.name])), False
        elif dataclasses.is_dataclass(value):
            for inner, changed, moves in mutations(value, where + "."):
                yield inner, _with(obj, f.name, changed), moves
        else:
            yield where, _with(obj, f.name, _other(f.name, value, hints[f.name])), True


X = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(1, 28, 28)
BASES = {
    "first-layer": ExplainRequest.build(X, "mnist-mlp", top_k=50),
    "first-layer, keep-class, preprocessing": ExplainRequest.build(
        X, "mnist-mlp", keep_class=True, min_confidence=0.5, target=3,
        preprocess={"crop": 28, "scale": 255, "grayscale": True}),
    "whole-network": ExplainRequest.build(X, "mnist-mlp", method="whole-network", min_confidence=0.6),
    "text": ExplainRequest.build(model="text-cnn", text="a gorgeous film", sis_threshold=0.5),
    "baseline": ExplainRequest.build(X, "mnist-mlp", method="integrated_gradients", steps=8),
}


@pytest.mark.parametrize("base", list(BASES))
def test_changing_any_one_field_changes_the_identity(base):
    req = BASES[base]
    mine = identity(req)
    seen = set()
    for where, changed, moves in mutations(req):
        seen.add(where)
        assert (identity(changed) != mine) == moves, (base, where)
    # every field of the request and of the config classes it holds was walked
    assert {f.name for f in dataclasses.fields(ExplainRequest)} <= {w.split(".")[0] for w in seen}
    assert {f"config.{f.name}" for f in dataclasses.fields(req.config)
            if not dataclasses.is_dataclass(getattr(req.config, f.name))} <= seen


def test_every_method_config_is_covered():
    """Each config class a request can hold is walked by one of the bases above (a new one must join them)."""
    kinds = {type(r.config) for r in BASES.values()} | {type(r.config.smug) for r in BASES.values()
                                                       if isinstance(r.config, TextOptions)}
    assert kinds == {SmugConfig, NetworkConfig, TextOptions, TextSmugConfig, BaselineConfig}
    walked = {w for r in BASES.values() for w, _, _ in mutations(r)}
    assert {f"keep.{f.name}" for f in dataclasses.fields(KeepClass)} <= walked
    assert {f"preprocess.{f.name}" for f in dataclasses.fields(ImagePreprocess)} <= walked


def test_plain_and_keep_class_requests_differ():
    """Issue 27: the keep-class request and the plain one on the same input are two questions."""
    a = ExplainRequest.build(None, "mnist-mlp")
    b = ExplainRequest.build(None, "mnist-mlp", keep_class=True, min_confidence=0.9)
    c = ExplainRequest.build(None, "mnist-mlp", keep_class=True)
    assert len({identity(a), identity(b), identity(c)}) == 3
    pre = ExplainRequest.build(None, "mnist-mlp", preprocess={"crop": 28, "scale": 255, "grayscale": True})
    other = ExplainRequest.build(None, "mnist-mlp", preprocess={"crop": 28, "scale": 128, "grayscale": True})
    assert identity(pre) != identity(other) != identity(a)


def test_labels_and_spellings_do_not_change_it(tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(b"same bytes")
    (tmp_path / "b.png").write_bytes(b"same bytes")
    a = ExplainRequest.build(str(png), "mnist-mlp", gamma=0, name="a")
    assert identity(a) == identity(ExplainRequest.build(str(tmp_path / "b.png"), "mnist-mlp", gamma=0.0, name="b"))
    assert identity(a) == identity(ExplainRequest.build(ImageBytes(b"same bytes", "upload"), "mnist-mlp"))
    assert identity(ExplainRequest.build(X, "mnist-mlp")) == identity(
        ExplainRequest.build(ArrayInput(X.astype(np.float64), "x.npy"), "mnist-mlp", top_k=3000))
    assert identity(a) != identity(ExplainRequest.build(ImageBytes(b"other bytes"), "mnist-mlp"))
    doc = canonical(a)
    assert doc["scheme"] == SCHEME and doc["input"] == {"kind": "image",
                                                        "sha256": hashlib.sha256(b"same bytes").hexdigest()}
    assert "name" not in doc and "a.png" not in str(doc)


def test_an_image_models_neighbour_file_is_not_part_of_it(tmp_path):
    """Issue 28.3: the registry keeps <sha>.json (aliases) beside an upload; a new alias changes no id.
    A text model's tokenizer beside it is part of the model."""
    from smug.models.zoo import ZOO

    model = tmp_path / "up.onnx"
    model.write_bytes(Path(ZOO["mnist-mlp"].onnx_path()).read_bytes())
    req = ExplainRequest.build(X, str(model))
    before = identity(req)
    (tmp_path / "up.json").write_text('{"aliases": ["a"]}')
    assert identity(req) == before
    (tmp_path / "up.json").write_text('{"aliases": ["a", "b"]}')
    assert identity(req) == before
    text = dataclasses.replace(req, input=TextInput("a film"), modality="text")
    first = identity(text)
    (tmp_path / "up.json").write_text('{"tokenizer": 1}')
    assert identity(text) != first


def test_the_answer_is_bound_to_its_request(tmp_path):
    """Issue 31.3: result.json names the request's identity, the input's and the model file's sha256."""
    from smug.models.zoo import ZOO
    from smug.pipeline import Explanation, run

    png = tmp_path / "digit.png"
    png.write_bytes(ZOO["mnist-mlp"].demo_input.read_bytes())
    req = ExplainRequest.build(str(png), "mnist-mlp", timeout=30)
    e = run(req)
    doc = e.to_json()
    assert doc["identity"] == identity(req) and doc["id_scheme"] == SCHEME
    assert doc["input_sha256"] == hashlib.sha256(png.read_bytes()).hexdigest()
    assert doc["model_sha256"] == hashlib.sha256(Path(ZOO["mnist-mlp"].onnx_path()).read_bytes()).hexdigest()
    back = Explanation.from_json(doc)
    assert (back.identity, back.input_sha256, back.model_sha256) == (e.identity, e.input_sha256, e.model_sha256)
    assert isinstance(req.input, ImageFile)
