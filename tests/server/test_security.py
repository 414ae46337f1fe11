"""Who may do what: model ids cannot be taken over, uploads cannot read files, tokens and TLS
(mutual TLS included) are enforced from the first request, failed logins are logged."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest

from smug.clients import Client
from smug.server.config import ServerConfig
from smug.server.main import start

from _service_checks import refused  # tests/server/_service_checks.py


def test_a_name_never_takes_over_an_id_or_a_zoo_name(client, nets):
    a = client.register_model(nets.tiny(seed=11), name="victim-a")
    b_bytes = nets.tiny(seed=12)
    for name in (a.id, a.id.upper(), "0" * 64):
        refused(lambda: client.register_model(b_bytes, name=name), grpc.StatusCode.INVALID_ARGUMENT, "model id")
    refused(lambda: client.register_model(b_bytes, name="mnist-mlp"), grpc.StatusCode.ALREADY_EXISTS, "zoo")
    refused(lambda: client.register_model(b_bytes, name="victim-a"), grpc.StatusCode.ALREADY_EXISTS, a.id)
    b = client.register_model(b_bytes, name="other-b")
    assert b.id != a.id
    x = np.random.default_rng(0).normal(size=(1, 8, 8)).astype(np.float32)
    for ref in (a.id, "victim-a"):  # the id and the alias still answer with model A
        e = client.explain(x, model=ref, top_k=5, timeout=20.0)
        assert e.origin["model_id"] == a.id and e.certificate["valid"]


def test_an_upload_cannot_read_another_model(client, nets, server):
    import onnx
    from onnx import numpy_helper

    a = client.register_model(nets.tiny(seed=21), name="secret-a")
    stolen = onnx.load_from_string(nets.tiny(seed=22))
    w = stolen.graph.initializer[0]
    for location in (f"{a.id}.onnx", "../" + a.id + ".onnx", str(server.service.registry.store / f"{a.id}.onnx"),
                     "/etc/passwd"):
        t = onnx.TensorProto()
        t.CopyFrom(numpy_helper.from_array(np.zeros((2, 1, 3, 3), np.float32), w.name))
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (("location", location), ("offset", "0"), ("length", "72")):
            t.external_data.add(key=key, value=value)
        w.CopyFrom(t)
        err = refused(lambda: client.register_model(stolen.SerializeToString()), grpc.StatusCode.INVALID_ARGUMENT,
                     "external file", "self-contained")
        assert "/" not in err.message.replace("n/a", "")  # no server path in the refusal
    assert client.health() == "SERVING"


def test_control_flow_and_custom_operators_are_refused_at_registration(client):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    body = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "body", [], [y])
    cond = helper.make_tensor("c", TensorProto.BOOL, [], [True])
    graph_if = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body)], "if",
                                 [x], [y], [cond])
    custom = helper.make_graph([helper.make_node("Magic", ["x"], ["y"], domain="com.evil")], "custom", [x], [y])
    for graph, words in ((graph_if, "subgraph"), (custom, "custom operators")):
        opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.evil", 1)]
        model = helper.make_model(graph, opset_imports=opsets)
        refused(lambda: client.register_model(model.SerializeToString()), grpc.StatusCode.INVALID_ARGUMENT, words)


def test_an_empty_token_is_refused_at_start_up(tmp_path):
    with pytest.raises(ValueError, match="token is empty"):
        ServerConfig(token="", store=tmp_path)
    with pytest.raises(ValueError, match="token is empty"):
        ServerConfig(token="   ", store=tmp_path)
    for args, env in (((" --token", ""), {}), ((), {"SMUG_TOKEN": ""})):
        t0 = time.time()
        r = subprocess.run([sys.executable, "-m", "smug.server", "--port", "0", "--store", str(tmp_path),
                            *[a.strip() for a in args]], capture_output=True, text=True, timeout=30,
                           env={**_env(), **env})
        assert r.returncode != 0 and "token is empty" in r.stderr, r.stderr
        assert time.time() - t0 < 10


def _env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if k != "SMUG_TOKEN"}


def test_failed_logins_are_logged_and_refused_before_the_message_is_read(tmp_path, caplog):
    srv = start(ServerConfig(port=0, workers=1, token="s3cret", store=tmp_path, inspect_zoo=False,
                             max_message_mb=64.0, max_upload_mb=64.0))
    try:
        target = f"127.0.0.1:{srv.port}"
        with caplog.at_level("INFO", logger="smug.server"):
            with Client(target) as anon:
                assert anon.health() == "SERVING"
                refused(anon.list_models, grpc.StatusCode.UNAUTHENTICATED, "missing bearer token")
            proxy = _CountingProxy(srv.port)  # counts the bytes that reach the server
            with Client(f"127.0.0.1:{proxy.port}") as anon:
                refused(lambda: anon.register_model(b"\0" * (60 * 2**20)), grpc.StatusCode.UNAUTHENTICATED)
            time.sleep(0.5)
            assert proxy.to_server < 16 * 2**20, proxy.to_server  # the flow-control window, not the 60 MB
            with Client(target, token="guess-1234") as wrong:
                refused(lambda: wrong.explain(model="mnist-mlp"), grpc.StatusCode.UNAUTHENTICATED, "wrong bearer")
            with Client(target, token="s3cret") as ok:  # past the token check: the registry answers
                refused(lambda: ok.explain(model="0" * 64), grpc.StatusCode.NOT_FOUND, "unknown model")
        failed = [json.loads(r.message) for r in caplog.records if '"auth_failed"' in r.message]
        assert [(f["rpc"], f["reason"]) for f in failed] == [("ListModels", "missing"), ("RegisterModel", "missing"),
                                                             ("Explain", "wrong")]
        assert all(f["peer"] and f["code"] == "UNAUTHENTICATED" for f in failed)
        assert not any("guess-1234" in r.message or "s3cret" in r.message for r in caplog.records)
        _reflection_needs_the_token(target, "s3cret")
    finally:
        srv.stop(grace=1)


def _reflection_needs_the_token(target: str, token: str) -> None:
    """What the README tells grpcurl users: reflection (how grpcurl finds every service, health's too) needs
    the token, given as ``-H 'authorization: Bearer TOKEN'``."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        def services(metadata=()):
            ask = iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            answer = next(stub.ServerReflectionInfo(ask, metadata=metadata, timeout=10))
            return {s.name for s in answer.list_services_response.service}

        with pytest.raises(grpc.RpcError) as err:
            services()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and "bearer token" in err.value.details()
        assert {"smug.v1.Smug", "grpc.health.v1.Health"} <= services([("authorization", f"Bearer {token}")])


class _CountingProxy:
    """A loopback TCP proxy to ``port`` that counts the bytes it forwards towards the server."""

    def __init__(self, port: int):
        import socket
        import threading

        self._socket, self._target, self.to_server = socket.socket(), port, 0
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen()
        self.port = self._socket.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._socket.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._target))
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src, dst, upstream: bool) -> None:
        import socket

        try:
            while data := src.recv(65536):
                if upstream:
                    self.to_server += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for localhost and two client certificates (one signed by the CA,
    one self-signed), made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: no certificates for the TLS tests")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
             "-days", "1", "-subj", "/CN=smug test CA")
    for name, cn in (("server", "localhost"), ("client", "alice")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / f"{name}.key"), "-out",
                 str(d / f"{name}.csr"), "-subj", f"/CN={cn}")
        ext = d / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost\n" if name == "server" else "extendedKeyUsage=clientAuth\n")
        _openssl("x509", "-req", "-in", str(d / f"{name}.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
                 "-CAcreateserial", "-out", str(d / f"{name}.pem"), "-days", "1", "-extfile", str(ext))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "mallory.key"), "-out",
             str(d / "mallory.pem"), "-days", "1", "-subj", "/CN=mallory")
    return d


def test_mutual_tls(pki, tmp_path):
    srv = start(ServerConfig(port=0, workers=1, tls_cert=pki / "server.pem", tls_key=pki / "server.key",
                             tls_client_ca=pki / "ca.pem", store=tmp_path, inspect_zoo=False))
    try:
        target, ca = f"localhost:{srv.port}", (pki / "ca.pem").read_bytes()
        with Client(target, root_certificates=ca, client_cert=(pki / "client.pem").read_bytes(),
                    client_key=(pki / "client.key").read_bytes()) as alice:
            assert alice.health() == "SERVING"
            refused(lambda: alice.explain(model="0" * 64), grpc.StatusCode.NOT_FOUND, "unknown model")
        with Client(target, root_certificates=ca) as nobody:  # no client certificate: the handshake fails
            refused(nobody.list_models, grpc.StatusCode.UNAVAILABLE)
        with Client(target, root_certificates=ca, client_cert=(pki / "mallory.pem").read_bytes(),
                    client_key=(pki / "mallory.key").read_bytes()) as mallory:  # not signed by the CA
            refused(mallory.list_models, grpc.StatusCode.UNAVAILABLE)
    finally:
        srv.stop(grace=1)


@pytest.mark.parametrize("case", ["missing key", "key as certificate", "mismatched key", "port in use"])
def test_start_up_failures_exit_non_zero_within_2_s(case, pki, tmp_path):
    import socket

    args = ["--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")]
    sock = None
    if case == "missing key":
        args[3] = str(tmp_path / "nonexistent.key")
    elif case == "key as certificate":
        args[1] = str(pki / "server.key")
    elif case == "mismatched key":
        args[3] = str(pki / "client.key")
    else:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        args = []
    port = sock.getsockname()[1] if sock else 0
    try:
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "smug.server", "--port", str(port), "--store", str(tmp_path), *args],
                           capture_output=True, text=True, timeout=30, env=_env())
        took = time.monotonic() - t0
    finally:
        if sock:
            sock.close()
    assert r.returncode != 0 and "smug: error:" in r.stderr, (r.returncode, r.stderr)
    assert took < 2.0, (case, took, r.stderr)
    assert "Traceback" not in r.stderr


def test_external_data_is_refused_in_training_info_and_sparse_attributes(client, nets):
    """Issue 28.8: the two places the first check missed: a graph of ``training_info`` and a node
    attribute holding several sparse tensors; refused in the server (the words are its own), nothing stored."""
    import onnx
    from onnx import TensorProto, helper

    def external(name: str) -> onnx.TensorProto:
        t = helper.make_tensor(name, TensorProto.FLOAT, [4], [0.0] * 4)
        t.ClearField("float_data")
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "/etc/passwd"), ("offset", "0"), ("length", "16")):
            t.external_data.add(key=key, value=value)
        return t

    in_training = onnx.load_from_string(nets.tiny(seed=23))
    info = in_training.training_info.add()
    info.initialization.CopyFrom(helper.make_graph([], "init", [], [], [external("hidden")]))
    in_sparse = onnx.load_from_string(nets.tiny(seed=24))
    values = external("values")
    indices = helper.make_tensor("indices", TensorProto.INT64, [4], [0, 1, 2, 3])
    attr = in_sparse.graph.node[0].attribute.add()
    attr.name, attr.type = "hidden", onnx.AttributeProto.SPARSE_TENSORS
    attr.sparse_tensors.add().CopyFrom(helper.make_sparse_tensor(values, indices, [4]))
    before = {m.id for m in client.list_models()}
    for model, name in ((in_training, "hidden"), (in_sparse, "values")):
        err = refused(lambda: client.register_model(model.SerializeToString()), grpc.StatusCode.INVALID_ARGUMENT,
                      f"tensor '{name}' keeps its data in an external file", "self-contained")
        assert "/etc" not in err.message
    assert {m.id for m in client.list_models()} == before
