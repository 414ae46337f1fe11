"""Faults: nothing a server starts outlives the server itself (a cancel and a killed worker:
tests/server/test_service.py); uploads are bounded; a draining server answers with what it has."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import numpy as np
import pytest

from smug.clients import Client
from smug.clients.client import RemoteError
from smug.events import Improved
from smug.pipeline import Explanation

from _service_checks import wait_until  # tests/server/_service_checks.py


def slow_net(layers: int = 750, channels: int = 16, size: int = 1024) -> bytes:
    """A 70 kB classifier whose single forward pass (the inspection of an upload) takes seconds:
    about 11 s with onnxruntime 1.32 on 2 cores (a 3x3 conv layer at 1024x1024x16 is 4.8 GFLOP;
    250 layers at 512x512 took under 1 s there, though far longer with older releases)."""
    from onnx import TensorProto, helper, numpy_helper

    r = np.random.default_rng(0)
    inits = [numpy_helper.from_array(r.normal(size=(channels, 1, 3, 3)).astype(np.float32), "W0"),
             numpy_helper.from_array(0.1 * r.normal(size=(channels, channels, 3, 3)).astype(np.float32), "W"),
             numpy_helper.from_array(r.normal(size=(3, channels)).astype(np.float32), "G"),
             numpy_helper.from_array(np.zeros(3, np.float32), "gb")]
    nodes = [helper.make_node("Conv", ["x", "W0"], ["h0"], pads=[1, 1, 1, 1], kernel_shape=[3, 3])]
    for i in range(layers):
        nodes += [helper.make_node("Relu", [f"h{i}"], [f"r{i}"]),
                  helper.make_node("Conv", [f"r{i}", "W"], [f"h{i + 1}"], pads=[1, 1, 1, 1], kernel_shape=[3, 3])]
    nodes += [helper.make_node("GlobalAveragePool", [f"h{layers}"], ["p"]),
              helper.make_node("Flatten", ["p"], ["f"], axis=1),
              helper.make_node("Gemm", ["f", "G", "gb"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, "slow",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_abandoned_and_excess_uploads_are_bounded(server, client):
    """Three slow uploads fill the two workers and the queue of one; a fourth is refused at once;
    health checks are answered meanwhile; when the clients' deadlines pass nothing is registered."""
    import hashlib

    models = [slow_net(layers=750 + i) for i in range(4)]  # ~3.6 TFLOP each: far beyond the 3 s deadline
    assert wait_until(lambda: not server.service.running, 30)
    outcomes: list = [None] * 3

    def upload(i: int) -> None:
        try:
            client._call(client.stub.RegisterModel, client.pb.RegisterModelRequest(onnx=models[i]), deadline=3.0)
            outcomes[i] = "OK"
        except RemoteError as exc:
            outcomes[i] = exc.code

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(server.service.running) >= 2, 5)  # two inspections on the two workers
    time.sleep(0.3)
    t0 = time.time()
    with pytest.raises(RemoteError) as err:
        client._call(client.stub.RegisterModel, client.pb.RegisterModelRequest(onnx=models[3]), deadline=3.0)
    assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and time.time() - t0 < 1.5
    t0 = time.time()
    assert client.health(deadline=2.0) == "SERVING" and time.time() - t0 < 1.0
    for t in threads:
        t.join(10)
    assert outcomes == [grpc.StatusCode.DEADLINE_EXCEEDED] * 3, outcomes
    assert wait_until(lambda: not server.service.running, 3.0)  # the inspections were stopped, not left running
    time.sleep(1.0)
    ids = {hashlib.sha256(m).hexdigest() for m in models}
    assert not ids & {m.id for m in client.list_models()}
    assert not ids & {p.stem for p in server.service.registry.store.glob("*.onnx")}
    assert wait_until(lambda: len(server.pool.pids()) == 2, 30)


def test_server_sigkill_leaves_no_process(spawn_server, nets, procs):
    proc, port, lines = spawn_server("--workers", "1")
    data, x = nets.hard(size=96, seed=3)
    with Client(f"127.0.0.1:{port}") as c:
        model = c.register_model(data).id

        def call() -> None:
            try:
                c.explain(x, model, top_k=1500, backend="portfolio", timeout=60.0)
            except RemoteError:  # the server is killed under it
                pass

        threading.Thread(target=call, daemon=True).start()
        assert wait_until(lambda: len(procs.descendants(proc.pid)) >= 3, 60), procs.descendants(proc.pid)  # worker + solvers
        family = procs.descendants(proc.pid)
        proc.kill()
        proc.wait(5)
        assert wait_until(lambda: not any(procs.alive(p) for p in family), 2.0), \
            [(p, open(f"/proc/{p}/cmdline").read()[:80]) for p in family if procs.alive(p)]


def test_sigterm_drains_with_best_so_far_answers(spawn_server, nets, procs):
    proc, port, lines = spawn_server("--workers", "1", "--shutdown-grace", "6")
    data, x = nets.hard(size=160, seed=0)  # with top_k 3000 far from proven optimal within the grace
    with Client(f"127.0.0.1:{port}") as c:
        model = c.register_model(data).id
        events = []
        stream = c.explain_stream(x, model, top_k=3000, timeout=60.0)
        for ev in stream:
            events.append(ev)
            if isinstance(ev, Improved):
                break
        family = procs.descendants(proc.pid)
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        assert c.health(deadline=2.0) == "NOT_SERVING"  # still answered while draining
        with pytest.raises(RemoteError) as err:
            c.explain(model="mnist-mlp", timeout=5.0)
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        final = list(stream)[-1]
        assert isinstance(final, Explanation)
        assert final.status == "feasible" and final.certificate["valid"] and final.objective == int(final.mask.sum())
        assert final.lower_bound < final.objective
        assert time.time() - t0 < 6.0 + 1.0
        assert proc.wait(10) == 0
    assert wait_until(lambda: not any(procs.alive(p) for p in family), 2.0)
    assert any('"draining"' in line for line in lines)


def test_a_one_second_grace_keeps_the_streamed_verified_mask(spawn_server):
    """Issue 28.9: with a 1 s grace the busy worker is hurried as the drain starts, and its solve answers at
    once with the best verified mask it reported (certified while the solve ran, not after the stop), so
    the client gets that answer, not "the client cancelled"; the log says OK."""
    import json

    from smug.server.main import hurry_after

    assert hurry_after(1.0) == hurry_after(4.0) == 0.0 and hurry_after(6.0) == 1.0 and hurry_after(30.0) == 15.0
    proc, port, lines = spawn_server("--workers", "1", "--shutdown-grace", "1")
    with Client(f"127.0.0.1:{port}") as c:
        # mask 3 within a second; the proof of its minimality takes several more
        stream = c.explain_stream(None, "mnist-mlp", method="whole-network", window=1, timeout=60.0)
        streamed = next(ev for ev in stream if isinstance(ev, Improved))
        t0 = time.time()
        proc.send_signal(signal.SIGTERM)
        final = list(stream)[-1]
        assert time.time() - t0 < 1.5
        assert isinstance(final, Explanation) and final.certificate["valid"] and final.mask is not None
        assert final.status in ("feasible", "optimal") and final.objective <= streamed.size
        assert proc.wait(15) == 0
    logged = [json.loads(line) for line in lines if line.startswith("{") and '"ExplainStream"' in line]
    assert [entry["code"] for entry in logged] == ["OK"]
