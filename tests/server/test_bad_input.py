"""Every bad input gets a precise gRPC status and message, and the server stays up."""

from __future__ import annotations

import grpc
import numpy as np
import pytest


from _service_checks import refused  # tests/server/_service_checks.py

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _softmax_net() -> bytes:
    """A valid ONNX classifier whose first node is not a linear layer."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["y"], axis=1)], "softmax",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.fixture(scope="module")
def digit():
    from smug.pipeline import ExplainRequest
    from smug.pipeline.inputs import load_image

    return load_image(ExplainRequest.build(None, "mnist-mlp")).x


def test_bad_models_are_refused(client):
    refused(lambda: client.register_model(b"certainly not onnx"), INVALID, "not a valid ONNX model")
    refused(lambda: client.register_model(b""), INVALID, "empty")
    refused(lambda: client.register_model(_softmax_net()), INVALID, "unsupported first layer")
    refused(lambda: client.register_model(b"\0" * (1024 * 1024 + 10)), grpc.StatusCode.RESOURCE_EXHAUSTED,
           "upload cap")
    refused(lambda: client.register_model(b"x", name="mnist-mlp"), grpc.StatusCode.ALREADY_EXISTS, "zoo")
    refused(lambda: client.explain(model="0" * 64), grpc.StatusCode.NOT_FOUND, "unknown model")
    assert client.health() == "SERVING"


def test_bad_tensors_are_refused(client, digit):
    from smug.proto import load

    pb, _ = load()
    ex = lambda x: client.explain(x, model="mnist-mlp", method="whole-network")  # noqa: E731
    refused(lambda: ex(np.zeros((1, 27, 28), np.float32)), INVALID, "shape (1, 27, 28)", "(1, 28, 28)")
    refused(lambda: ex(digit.astype(np.int32)), INVALID, "dtype")
    refused(lambda: ex(digit.astype(np.uint8)), INVALID, "not float32")
    nan = digit.copy()
    nan[0, 3, 3] = np.nan
    refused(lambda: ex(nan), INVALID, "NaN or Inf")
    inf = digit.copy()
    inf[0, 0, 0] = np.inf
    refused(lambda: ex(inf), INVALID, "NaN or Inf")
    refused(lambda: ex(np.zeros((0, 28, 28), np.float32)), INVALID, "empty")
    refused(lambda: ex(np.zeros((1, 1024, 1024), np.float32)), grpc.StatusCode.RESOURCE_EXHAUSTED)  # > 2 MB
    # bytes that do not match the declared shape
    req = pb.ExplainRequest(model="mnist-mlp", tensor=pb.Tensor(shape=[1, 28, 28], dtype="float32", data=b"\0" * 12))
    refused(lambda: client._call(client.stub.Explain, req), INVALID, "12 bytes do not match")
    # an image that is not an image, and images for a model without preprocessing
    refused(lambda: client.explain(b"GIF89a-broken", model="mnist-mlp"), INVALID, "not a readable image")
    refused(lambda: client.explain(model="mnist-mlp", text="a fine film"), INVALID, "text input needs a text model")
    assert client.explain(digit, model="mnist-mlp", method="whole-network").status == "optimal"


@pytest.mark.parametrize("params, words", [
    (dict(top_k=0), "top_k"), (dict(gamma=1.0), "gamma"), (dict(gamma=float("nan")), "gamma"),
    (dict(window=0), "window"), (dict(window=29), "window"), (dict(timeout=-1.0), "timeout"),
    (dict(timeout=1e9), "timeout"), (dict(backend="magic"), "backend"), (dict(target=10), "target"),
    (dict(form="cubic"), "form"), (dict(ig_steps=0), "ig_steps"),
    (dict(method="whole-network", delta=-1.0), "delta"),
    (dict(method="whole-network", min_confidence=1.0), "min_confidence"),
    (dict(method="whole-network", backend="magic"), "backend"),
])
def test_out_of_range_parameters(client, params, words):
    refused(lambda: client.explain(model="mnist-mlp", **params), INVALID, words)


def test_text_that_is_not_utf8_is_refused(client):
    """bytes on the wire: invalid UTF-8 is INVALID_ARGUMENT naming the byte, not INTERNAL."""
    refused(lambda: client.explain(model="text-cnn", text=b"a fine \xff film"), INVALID,
           "not valid UTF-8", "0xff", "offset 7")
    refused(lambda: client.explain(model="text-cnn", text=b"   "), INVALID, "empty")
    # an undecodable command-line byte (a lone surrogate) travels as that byte and is refused the same way
    refused(lambda: client.explain(model="text-cnn", text="bad \udcfe byte"), INVALID, "not valid UTF-8", "0xfe")
    assert client.health() == "SERVING"


def test_text_of_only_unknown_words_is_refused(client):
    refused(lambda: client.explain(model="text-cnn", text="qzxv wubbalubba xyzzyq"), INVALID,
           "none of the 3 words", "vocabulary")


def test_too_long_text_is_truncated_and_says_so(client):
    from smug.pipeline.inputs import load_text_model

    _, tok = load_text_model("text-cnn")
    words = ("a gorgeous funny and deeply moving film " * (tok.length // 7 + 5)).split()
    assert len(words) > tok.length
    remote = client.explain(model="text-cnn", text=" ".join(words), timeout=30.0)
    assert remote.text.truncated is True and len(remote.text.words) == tok.length
    assert any(f"only the first {tok.length}" in w for w in remote.warnings), remote.warnings
    assert remote.certificate["valid"]


def test_expired_deadline_is_refused_before_any_work(server, client):
    before = server.pool.replaced
    # 1.2 s: below the server's 1.5 s margin, yet long enough that the client's own expiry does not answer
    err = refused(lambda: client.explain(model="mnist-mlp", deadline=1.2), grpc.StatusCode.DEADLINE_EXCEEDED)
    assert "the server keeps to answer; nothing was started" in err.message, err.message
    assert server.pool.replaced == before and not server.service.running


def test_token_and_tls(tmp_path):
    """Bearer-token auth (health stays open) over TLS with a self-signed certificate."""
    import shutil
    import subprocess

    from smug.clients import Client
    from smug.server.config import ServerConfig
    from smug.server.main import start

    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: no certificate for the TLS test")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    srv = start(ServerConfig(port=0, workers=1, token="s3cret", tls_cert=cert, tls_key=key, store=tmp_path))
    try:
        target = f"localhost:{srv.port}"
        with Client(target, root_certificates=cert.read_bytes()) as anon:
            assert anon.health() == "SERVING"  # health checks need no token
            refused(anon.list_models, grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
        with Client(target, token="guess", root_certificates=cert.read_bytes()) as wrong:
            refused(lambda: wrong.explain(model="mnist-mlp"), grpc.StatusCode.UNAUTHENTICATED, "wrong bearer token")
        with Client(target, token="s3cret", root_certificates=cert.read_bytes()) as ok:
            assert ok.explain(model="mnist-mlp", method="whole-network").status == "optimal"
        with Client(target, token="s3cret") as plain:  # no TLS against a TLS port
            refused(plain.list_models, grpc.StatusCode.UNAVAILABLE)
    finally:
        srv.stop(grace=1)
