"""Requests and answers between ``smug.v1`` messages and the pipeline (no server needed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("grpc")

from smug.pipeline import ExplainRequest, explain  # noqa: E402
from smug.proto import load  # noqa: E402
from smug.proto.wire import (WireError, explanation_from_proto, explanation_to_proto, from_tensor,  # noqa: E402
                             input_of, message, request_fields, request_to_proto, to_tensor)

pb, _ = load()


@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8", "bool"])
def test_tensor_round_trip_is_exact(rng, dtype):
    a = (rng.normal(size=(2, 3, 5)) * 50).astype(dtype)
    t = to_tensor(pb, a)
    assert list(t.shape) == [2, 3, 5] and t.dtype == dtype and len(t.data) == a.nbytes
    assert t.data == a.astype(a.dtype.newbyteorder("<")).tobytes()  # raw little-endian, C order
    b = from_tensor(pb.Tensor.FromString(t.SerializeToString()))
    assert b.dtype == a.dtype and np.array_equal(a, b)


def test_malformed_tensors_are_wire_errors():
    for t, words in [(pb.Tensor(shape=[2], dtype="int8", data=b"12"), "dtype"),
                     (pb.Tensor(shape=[3], dtype="float32", data=b"\0" * 4), "do not match"),
                     (pb.Tensor(shape=[0], dtype="float32", data=b""), "empty")]:
        with pytest.raises(WireError, match=words):
            from_tensor(t)


def test_unset_parameters_keep_the_pipeline_defaults():
    assert request_fields(pb, pb.ExplainRequest()) == {"method": "smug"}
    req = message(pb, "m", method="whole-network", window=2, delta=0.5, backend="enum", timeout=3, target=4)
    assert request_fields(pb, req) == dict(method="whole-network", window=2, delta=0.5, backend="enum",
                                           timeout=3.0, target=4)
    req = message(pb, "m", top_k=7, gamma=0.0, form="affine", ig_steps=16, baseline=-0.5)
    assert request_fields(pb, req) == dict(method="smug", top_k=7, gamma=0.0, form="affine", ig_steps=16,
                                           baseline=-0.5)  # zero is a set value (proto3 optional)
    assert request_fields(pb, message(pb, "m", method="gradcam"))["method"] == "gradcam"
    with pytest.raises(WireError, match="baseline_method"):
        request_fields(pb, pb.ExplainRequest(params=pb.ExplainParams(method=pb.BASELINE)))
    with pytest.raises(WireError, match="finite"):
        request_fields(pb, message(pb, "m", gamma=float("nan")))


def test_a_request_survives_the_wire(rng):
    x = rng.random((1, 28, 28)).astype(np.float32)
    local = ExplainRequest.build(x, "mnist-mlp", top_k=12, window=2, timeout=9.0, target=3)
    msg = pb.ExplainRequest.FromString(request_to_proto(pb, local).SerializeToString())
    source, text = input_of(msg)
    again = ExplainRequest.build(source, msg.model, text=text, **request_fields(pb, msg))
    assert again.config == local.config and again.timeout == 9.0 and again.target == 3
    assert np.array_equal(again.input.array, x) and text is None
    t = ExplainRequest.build(None, "text-cnn", text="a fine film", top_k=5)
    msg = request_to_proto(pb, t)
    assert input_of(msg)[1] == b"a fine film" and request_fields(pb, msg)["top_k"] == 5


@pytest.mark.parametrize("kw", [dict(top_k=12, window=2, gamma=0.25, form="affine", ig_steps=8, baseline=-0.5),
                                dict(keep_class=True, min_confidence=0.9, backend="z3", timeout=7),
                                dict(method="whole-network", delta=0.5, min_confidence=0.6, backend="enum"),
                                dict(method="gradcam"),
                                dict(method="robust", epsilon=0.1, mode="cardinality", window=2, timeout=5),
                                dict(method="robust", epsilon=float("inf")),
                                dict(model="text-cnn", text="a fine film", top_k=5, keep_class=True)])
def test_the_request_on_the_server_has_the_senders_identity(rng, kw):
    """Issue 27: ExplainRequest -> request_to_proto -> the server's decoding is the same question."""
    from smug.pipeline.identity import identity

    kw = {"model": "mnist-mlp", **kw}
    x = None if "text" in kw else rng.random((1, 28, 28)).astype(np.float32)
    local = ExplainRequest.build(x, **kw)
    msg = pb.ExplainRequest.FromString(request_to_proto(pb, local).SerializeToString())
    source, text = input_of(msg)
    again = ExplainRequest.build(source, msg.model, text=text, **request_fields(pb, msg))
    assert again == local if x is None else identity(again) == identity(local)


def test_what_the_wire_cannot_carry_is_refused_not_dropped():
    t = ExplainRequest.build(None, "text-cnn", text="a fine film", rows=("smug",))
    with pytest.raises(WireError, match="parameter 'rows' cannot be sent to a server"):
        request_to_proto(pb, t)
    pre = ExplainRequest.build(None, "mnist-mlp", preprocess={"crop": 28, "scale": 255, "grayscale": True})
    with pytest.raises(WireError, match="'preprocess'"):
        request_to_proto(pb, pre)
    with pytest.raises(WireError, match="'steps'"):
        request_to_proto(pb, ExplainRequest.build(None, "mnist-mlp", method="integrated_gradients", steps=8))


def test_an_explanation_survives_the_wire():
    e = explain(None, "mnist-mlp", method="whole-network", timeout=30)
    r = pb.ExplainResponse.FromString(explanation_to_proto(pb, e, "rid", "mid", {"queue": 0.5}).SerializeToString())
    back = explanation_from_proto(r, {"server": "here"})
    assert back.to_json() == {**e.to_json(), "timings": {**e.timings, "queue": 0.5},
                              "origin": {"request_id": "rid", "model_id": "mid", "server": "here"}}
    for name in ("mask", "pixel_mask", "picture"):
        assert np.array_equal(getattr(back, name), getattr(e, name))
    assert np.allclose(back.saliency, e.saliency)


@pytest.mark.parametrize("kind", ["image", "text"])
def test_model_info_keeps_the_kind(kind):
    from smug.proto.wire import ModelInfo, model_info_from_proto, model_info_to_proto

    info = ModelInfo("ab" * 32, ("m",), (1, 28, 28), 10, "a model", True, 123, kind == "image", kind)
    sent = pb.ModelInfo.FromString(model_info_to_proto(pb, info).SerializeToString())
    assert model_info_from_proto(sent) == info
    assert model_info_from_proto(pb.ModelInfo(id="x")).kind == "image"  # a server older than the field
