"""ExplainRequest is the only carrier of a request (issue 27): one default timeout, one list of parameter
names (the configs' dataclass fields), the same request from the CLI's arguments and from the API."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from smug.pipeline import ExplainRequest, RequestError
from smug.pipeline.identity import identity
from smug.pipeline.keep_class import KeepClass
from smug.pipeline.request import DEFAULT_TIMEOUT, BaselineConfig, Config, method_parameters


def test_the_timeout_default_is_written_once():
    field = {f.name: f for f in dataclasses.fields(ExplainRequest)}["timeout"]
    assert field.default == DEFAULT_TIMEOUT == ExplainRequest.build(None, "mnist-mlp").timeout
    assert ExplainRequest.build(None, "mnist-mlp", timeout=None).timeout == DEFAULT_TIMEOUT
    for bad in (0, -1, float("nan"), float("inf"), "soon"):
        with pytest.raises(RequestError, match="timeout must"):
            ExplainRequest.build(None, "mnist-mlp", timeout=bad)


def test_method_parameters_are_the_config_fields():
    want = set()
    for cls in (*typing.get_args(Config), KeepClass):
        if cls is BaselineConfig:
            continue
        for f in dataclasses.fields(cls):
            value = getattr(cls(), f.name)
            want |= {g.name for g in dataclasses.fields(value)} if dataclasses.is_dataclass(value) else {f.name}
    assert set(method_parameters()) == want and len(method_parameters()) == len(want)


@pytest.mark.parametrize("args, kw", [
    ([], {}),
    (["--top-k", "20", "--window", "1", "--timeout", "30"], dict(top_k=20, window=1, timeout=30)),
    (["--keep-class", "--min-confidence", "0.8"], dict(keep_class=True, min_confidence=0.8)),
    (["--method", "whole-network", "--delta", "0.5"], dict(method="whole-network", delta=0.5)),
    (["--text", "a fine film", "--model", "text-cnn", "--top-k", "5"], dict(text="a fine film", top_k=5)),
])
def test_the_cli_builds_the_apis_request(args, kw):
    from smug.clients.cli import _parser, requests_of

    a = _parser().parse_args(["explain", *args])
    model = "text-cnn" if "text" in kw else "mnist-mlp"
    if "--model" not in args:
        a.model = model
    (cli,) = requests_of(a)
    api = ExplainRequest.build(None, model, **kw)
    assert cli == api and identity(cli) == identity(api)


@pytest.mark.parametrize("dtype", ["uint8", "int64", "bool"])
def test_an_integer_array_is_refused_with_its_values_not_guessed_at(tmp_path, dtype):
    import numpy as np

    x = (np.arange(784).reshape(1, 28, 28) % 256).astype(dtype)
    path = tmp_path / "x.npy"
    np.save(path, x)
    for source, what in ((x, "the array"), (str(path), str(path))):
        with pytest.raises(RequestError, match=f"{what} holds {dtype} values .*scale it as the model expects"):
            ExplainRequest.build(source, "mnist-mlp")
    assert ExplainRequest.build((x / 255).astype("float32"), "mnist-mlp").input.array.dtype == np.float32


def test_the_api_shows_the_request_s_parameters():
    import inspect

    import smug

    shown = inspect.signature(smug.explain).parameters
    build = inspect.signature(ExplainRequest.build).parameters
    assert {n for n in build if n not in ("cls", "input", "params")} <= set(shown)
    assert set(method_parameters()) <= set(shown) and "out_dir" in shown and "source" in shown
    assert shown["method"].default == build["method"].default and shown["top_k"].default is None
