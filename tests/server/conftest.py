"""A live smug server on a loopback port (port 0: the OS picks), shared by the server tests."""

from __future__ import annotations

import numpy as np
import pytest


def hard_stem_net(size: int = 160, classes: int = 10, seed: int = 0):
    """(ONNX bytes, input): Conv 7x7/2 (the random He-normal stem of
    :mod:`smug.bench.hard_instances`) -> Relu -> GlobalAveragePool -> Flatten -> Gemm on
    smooth noise.  With top-k 3000 the first-layer problem takes z3 several seconds
    (many overlapping rows), so streaming, deadlines and cancellation can be watched."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from smug.bench.hard_instances import random_stem, smooth_noise_image

    stem = random_stem(kernel=7, size=size, seed=seed)
    G = np.random.default_rng(seed + 1).normal(size=(classes, stem.weight.shape[0])).astype(np.float32)
    inits = [numpy_helper.from_array(stem.weight.astype(np.float32), "W"), numpy_helper.from_array(G, "G"),
             numpy_helper.from_array(np.zeros(classes, np.float32), "gb")]
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["z"], strides=[2, 2], pads=[3, 3, 3, 3], kernel_shape=[7, 7]),
        helper.make_node("Relu", ["z"], ["a"]),
        helper.make_node("GlobalAveragePool", ["a"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "G", "gb"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "hard-stem",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(), smooth_noise_image(size, seed).astype(np.float32)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Two workers, a queue of one, a 1.5 s deadline margin, small message caps; a generous kill
    grace and no background zoo inspection (exporting Lite0 on a cold cache), so a loaded CI
    machine does not turn timed tests into kills or deadline misses."""
    pytest.importorskip("grpc")
    from smug.server.config import ServerConfig
    from smug.server.main import start

    config = ServerConfig(host="127.0.0.1", port=0, workers=2, max_queue=1, deadline_margin=1.5, grace=10.0,
                          max_message_mb=2.0, max_upload_mb=1.0, store=tmp_path_factory.mktemp("models"),
                          inspect_zoo=False)
    srv = start(config)
    yield srv
    srv.stop(grace=2)


@pytest.fixture(scope="session")
def client(server):
    from smug.clients import Client

    with Client(f"127.0.0.1:{server.port}") as c:
        yield c


@pytest.fixture(scope="session")
def hard(client):
    """(model id, input) of the hard stem, registered on the server."""
    data, x = hard_stem_net()
    return client.register_model(data, name="hard-stem").id, x


def tiny_net(seed: int = 0, classes: int = 3, size: int = 8) -> bytes:
    """A small valid classifier (Conv 3x3 -> Relu -> Flatten -> Gemm) on a (1, size, size) input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    r = np.random.default_rng(seed)
    W = r.normal(size=(2, 1, 3, 3)).astype(np.float32)
    G = r.normal(size=(classes, 2 * (size - 2) ** 2)).astype(np.float32)
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(G, "G"),
             numpy_helper.from_array(r.normal(size=classes).astype(np.float32), "gb")]
    nodes = [helper.make_node("Conv", ["x", "W"], ["z"], kernel_shape=[3, 3]),
             helper.make_node("Relu", ["z"], ["a"]),
             helper.make_node("Flatten", ["a"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "G", "gb"], ["logits"], transB=1)]
    graph = helper.make_graph(nodes, f"tiny-{seed}",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, size, size])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture(scope="session")
def nets():
    """Model builders for tests: ``nets.tiny(seed)``, ``nets.hard(size, seed)``."""
    from types import SimpleNamespace

    return SimpleNamespace(tiny=tiny_net, hard=hard_stem_net)


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (from /proc; zombies excluded)."""
    import os

    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parent[int(entry)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def spawn_server(tmp_path):
    """Start ``python -m smug.server --port 0 ARGS`` and wait for its "serving" line:
    ``spawn_server(*args) -> (process, port, lines)``; ``lines`` fills with its stderr. Killed at the end."""
    import json
    import os
    import subprocess
    import sys
    import threading
    import time

    started = []

    def spawn(*args: str, store=None, timeout: float = 120.0):
        env = {**os.environ, "SMUG_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "smug.server", "--port", "0", "--store",
                                 str(store or tmp_path / "store"), *args],
                                stderr=subprocess.PIPE, text=True, env=env)
        started.append(proc)
        lines: list[str] = []
        serving = threading.Event()
        port: list[int] = []

        def read() -> None:
            for line in proc.stderr:
                lines.append(line.rstrip("\n"))
                if '"event": "serving"' in line:
                    port.append(int(json.loads(line)["address"].rsplit(":", 1)[1]))
                    serving.set()
            serving.set()

        threading.Thread(target=read, daemon=True).start()
        end = time.time() + timeout
        while not serving.wait(0.1) and time.time() < end:
            pass
        assert port, f"the server did not start: {lines[-20:]}"
        return proc, port[0], lines

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="session")
def procs():
    """Process look-ups from /proc: ``procs.descendants(pid)``, ``procs.alive(pid)``."""
    from types import SimpleNamespace

    return SimpleNamespace(descendants=descendants, alive=alive)
