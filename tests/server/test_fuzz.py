"""A seeded, bounded fuzz of the live service: tensors, images, texts, ONNX bytes, parameters,
names, raw (malformed) protobuf and batch streams.  Whatever comes in, the server stays up, every
reply is a documented status (never ``INTERNAL``), no message carries a server path, a temp name
or an exception class, and no worker is restarted.  Default run: a few dozen cases;
``--fuzz-long``: 10,000.  ``$SMUG_FUZZ_SEED`` and ``$SMUG_FUZZ_CASES`` choose another seed and
count (a long campaign split over several processes, each with its own server)."""

from __future__ import annotations

import io
import os
import re
import struct
import time
import zlib

import grpc
import numpy as np

from smug.clients.client import RemoteError

DOCUMENTED = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED",
              "FAILED_PRECONDITION", "UNIMPLEMENTED"}
LEAKS = [re.compile(p) for p in (r"(?:^|[\s'\"(=])/(?:tmp|home|work|usr|var|root|proc|etc)\b", r"\.upload\b",
                                 r"\b[A-Z]\w*(?:Error|Exception)\b", r"Traceback", r"File \"", r"\bpid\b")]
RPCS = ("RegisterModel", "ListModels", "Explain", "ExplainStream", "DumpConstraints")
DEADLINE = 8.0  # per fuzzed request: a valid one that reaches a worker is cut to its best-so-far


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def png_header(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height`` grey pixels (a decompression bomb when large)."""
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(b"\0" * 16)) + _chunk(b"IEND", b""))


def real_png(size: int, rng) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _flip(data: bytes, rng, bits: int) -> bytes:
    b = bytearray(data)
    for _ in range(bits):
        i = int(rng.integers(len(b)))
        b[i] ^= 1 << int(rng.integers(8))
    return bytes(b)


def _text(rng, n: int) -> str:
    alphabet = "ab cdé\u00ff\u4e2d \t\n\x00\x1b😀/..%s{}"
    return "".join(alphabet[int(i)] for i in rng.integers(len(alphabet), size=n))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _nested_if(depth: int) -> bytes:
    """An ONNX ModelProto of ``depth`` nested ``If`` subgraphs, written directly in protobuf's wire
    format (ModelProto.graph=7, GraphProto.node=1, NodeProto.op_type=4 / attribute=5,
    AttributeProto.name=1 / g=6 / type=20): cheap at any depth."""
    graph = _field(1, _field(4, b"Identity"))
    for _ in range(depth):
        attr = _field(1, b"then_branch") + _field(6, graph) + _varint(20 << 3) + _varint(5)
        graph = _field(1, _field(4, b"If") + _field(5, attr))
    return _varint(1 << 3) + _varint(8) + _field(7, graph)


def _external(data: bytes, location: str, where: str = "initializer") -> bytes:
    """``data`` with a tensor whose bytes live in the file ``location``: an initializer, a tensor of
    a ``training_info`` graph, or a sparse tensor of a node attribute holding several (issue 28.8)."""
    import onnx
    from onnx import helper

    m = onnx.load_from_string(data)
    if where == "initializer":
        t = m.graph.initializer[0]
    elif where == "training_info":
        t = m.training_info.add().initialization.initializer.add()
    else:
        attr = m.graph.node[0].attribute.add()
        attr.name, attr.type = "hidden", onnx.AttributeProto.SPARSE_TENSORS
        sparse = attr.sparse_tensors.add()
        sparse.indices.CopyFrom(helper.make_tensor("i", onnx.TensorProto.INT64, [1], [0]))
        sparse.dims.append(4)
        t = sparse.values
    t.name, t.data_type = t.name or "hidden", onnx.TensorProto.FLOAT
    t.ClearField("raw_data")
    t.data_location = onnx.TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    return m.SerializeToString()


class Fuzzer:
    """Builds and sends one case at a time; each returns (label, code name, message)."""

    def __init__(self, client, rng, tiny: bytes, tiny_id: str, store: str):
        self.c, self.rng, self.tiny, self.tiny_id, self.store = client, rng, tiny, tiny_id, store
        self.pb = client.pb
        self.raw = {rpc: client.channel.unary_unary(f"/smug.v1.Smug/{rpc}") for rpc in RPCS}  # bytes in, bytes out
        self.submit = client.channel.stream_unary("/smug.v1.Smug/SubmitBatch")  # items as bytes

    def send(self, rpc: str, request):
        stub = getattr(self.c.stub, rpc)
        try:
            if rpc == "ExplainStream":
                for _ in stub(request, timeout=DEADLINE, metadata=self.c._metadata):
                    pass
            else:
                stub(request, timeout=DEADLINE, metadata=self.c._metadata)
            return "OK", ""
        except grpc.RpcError as exc:
            return exc.code().name, exc.details() or ""

    def r(self, n: int) -> int:
        return int(self.rng.integers(n))

    # ---- case families -----------------------------------------------------
    def tensor(self):
        pb, r = self.pb, self.r
        kind = r(6)
        dtype = ["float32", "float64", "uint8", "bool", "int32", "", "float16", ">f4", "complex64"][r(9)] \
            if kind < 4 or r(2) else "float32"
        if kind == 0:
            shape = [int(d) for d in self.rng.integers(-2, 4, size=r(70))]  # up to 69 dimensions
        elif kind == 1:
            shape = [1, 2**40, 2**40]
        elif kind == 2:
            shape = [0, 28, 28]
        else:
            shape = [1, 28, 28]
        n = int(np.prod([max(d, 0) for d in shape], dtype=np.float64)) if len(shape) < 10 else 0
        size = {"float64": 8, "float32": 4, "bool": 1, "uint8": 1}.get(dtype, 4)
        if kind >= 4 and n * size < 2**20:
            finite = [0.0, 1e-40, 1e30, -1e30, 1.0, -3.0]
            values = self.rng.choice(finite + [np.nan, np.inf] if kind == 5 else finite, size=n)
            data = values.astype("<f8" if dtype == "float64" else "<f4").tobytes() if dtype.startswith("float") \
                else self.rng.bytes(n * size)
        else:
            data = self.rng.bytes(r(4 * 28 * 28 + 16))
        req = pb.ExplainRequest(model="mnist-mlp", tensor=pb.Tensor(shape=shape, dtype=dtype, data=data))
        req.params.method = pb.BASELINE if r(2) else pb.FIRST_LAYER
        req.params.baseline_method = "gradient"
        req.params.timeout = 2.0
        return "tensor", *self.send("Explain", req)

    def image(self):
        kind = self.r(6)
        if kind == 0:
            data = png_header(60000, 60000)
        elif kind == 1:
            data = png_header(int(self.rng.integers(1, 2**31)), int(self.rng.integers(1, 2**31)))
        elif kind == 2:
            data = real_png(28, self.rng)[: self.r(200) + 1]  # truncated
        elif kind == 3:
            data = _flip(real_png(28, self.rng), self.rng, 1 + self.r(8))
        elif kind == 4:
            data = real_png([28, int(self.rng.integers(1, 64))][self.r(2)], self.rng)  # real, maybe the wrong size
        else:
            data = self.rng.bytes(self.r(300) + 1)
        req = self.pb.ExplainRequest(model="mnist-mlp", image=data)
        req.params.method, req.params.baseline_method = self.pb.BASELINE, "gradient"
        return "image", *self.send("Explain", req)

    def text(self):
        kind = self.r(4)
        words = "a the film movie great awful boring fun plot zzq qwerty".split()
        raw = (self.rng.bytes(self.r(64)) if kind == 0 else b"" if kind == 1
               else _text(self.rng, self.r(40)).encode("utf-8") if kind == 2
               else " ".join(words[self.r(len(words))] for _ in range(1 + self.r(12))).encode())
        req = self.pb.ExplainRequest(model=["text-cnn", "mnist-mlp"][self.r(2)], text=raw)
        if kind == 3:  # words: a real text solve, cut short
            req.params.method, req.params.timeout, req.params.top_k = self.pb.FIRST_LAYER, 1.0, 1 + self.r(20)
        else:
            req.params.method, req.params.baseline_method = self.pb.BASELINE, "gradient"
        return "text", *self.send("Explain", req)

    def onnx(self):
        kind = self.r(8)
        tiny = self.tiny
        if kind == 0:
            data = self.rng.bytes(self.r(2000) + 1)
        elif kind == 1:
            data = tiny[: self.r(len(tiny))]
        elif kind == 2:
            data = _flip(tiny, self.rng, 1 + self.r(16))
        elif kind == 3:
            where = [f"{self.tiny_id}.onnx", "../x.onnx", "/etc/passwd", self.store + "/x.onnx"][self.r(4)]
            data = _external(tiny, where, ["initializer", "training_info", "sparse_tensors"][self.r(3)])
        elif kind == 4:
            data = _nested_if(int(self.rng.integers(1, 400)))
        elif kind == 5:
            data = b"\x0a" * self.r(5000) + b"\x00"  # nested-length garbage
        elif kind == 6:
            data = tiny.replace(b"Relu", b"Rel\xff")
        else:
            data = tiny.replace(b"Conv", b"Loop")
        name = ["", "fuzz", _text(self.rng, self.r(30))][self.r(3)]
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            name = ""
        return "onnx", *self.send("RegisterModel", self.pb.RegisterModelRequest(onnx=data, name=name))

    def params(self):
        pb, r, rng = self.pb, self.r, self.rng
        req = pb.ExplainRequest(model=["mnist-mlp", "text-cnn", self.tiny_id][r(3)])
        p = req.params
        p.method = int(rng.integers(0, 6))
        if r(2):
            p.baseline_method = ["gradient", "", "magic", "../../x", "a" * 2000][r(5)]
        floats = [0.0, -1.0, 1.0, 0.5, 1e300, -1e300, float("nan"), float("inf"), 1e-300]
        ints = [0, -1, 1, 3, 2**31 - 1, -(2**31), 28, 29]
        for name in ("top_k", "window", "target", "ig_steps", "dump_bound"):
            if r(3) == 0:
                setattr(p, name, ints[r(len(ints))])
        for name in ("gamma", "baseline", "delta", "min_confidence"):
            if r(3) == 0:
                setattr(p, name, floats[r(len(floats))])
        p.timeout = [0.5, 1.0, -1.0, float("nan"), 1e9, 0.0][r(6)]
        if r(3) == 0:  # mostly plausible: random but in range, so the request reaches a worker
            req.model, p.method, p.timeout = "mnist-mlp", [pb.FIRST_LAYER, pb.WHOLE_NETWORK, pb.BASELINE][r(3)], 1.0
            p.baseline_method = ["gradient", "occlusion", "nonsense"][r(3)]
            for name in ("window", "target", "ig_steps", "dump_bound", "gamma", "baseline", "delta", "min_confidence",
                         "form", "backend", "dump_format"):
                p.ClearField(name)
            p.top_k = int(rng.integers(1, 60))
            if r(2):
                p.window = int(rng.integers(1, 8))
            if r(2):
                p.target = int(rng.integers(0, 10))
        for name in ("form", "backend", "dump_format"):
            if r(3) == 0:
                setattr(p, name, ["", "linear", "cubic", "highs", "z3", "portfolio", "x" * 500, "mps"][r(8)])
        if r(4) == 0:
            p.keep_class = True
        return "params", *self.send(["Explain", "DumpConstraints"][r(2)], req)

    def name(self):
        kind = self.r(6)
        name = ["x" * int(self.rng.integers(300, 1_500_000)), "".join(f"{self.r(16):x}" for _ in range(64)),
                _text(self.rng, self.r(100)), "../../etc/passwd", "", self.tiny_id.upper()][kind]
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            name = "?"
        if self.r(2):
            return "name", *self.send("Explain", self.pb.ExplainRequest(model=name))
        return "name", *self.send("RegisterModel", self.pb.RegisterModelRequest(onnx=self.tiny, name=name))

    def malformed(self):
        rpc = RPCS[self.r(len(RPCS))]
        kind = self.r(3)
        data = (self.rng.bytes(self.r(200) + 1) if kind == 0 else b"\x0a\xff\xff\xff\xff\x0f" + self.rng.bytes(8)
                if kind == 1 else b"\x0a\x03\xff\xfe\xfd")  # a string field that is not UTF-8
        try:
            if rpc == "ExplainStream":
                for _ in self.c.channel.unary_stream(f"/smug.v1.Smug/{rpc}")(data, timeout=DEADLINE):
                    pass
            else:
                self.raw[rpc](data, timeout=DEADLINE)
            return "malformed", "OK", ""
        except grpc.RpcError as exc:
            return "malformed", exc.code().name, exc.details() or ""

    def batch(self):
        """A batch RPC: WatchBatch of an id that names no batch, or a SubmitBatch stream of valid
        requests with one bad item among them (bytes that do not parse, an empty item, options late or
        out of range): refused naming the item, and nothing runs."""
        pb, r = self.pb, self.r
        if r(4) == 0:
            batch_id = ["", "0" * 32, "../" * 10, self.rng.bytes(16).hex(), "x" * 5000, _text(self.rng, 20)][r(6)]
            try:
                batch_id.encode("utf-8")
            except UnicodeEncodeError:
                batch_id = "?"
            try:
                for _ in self.c.stub.WatchBatch(pb.WatchBatchRequest(batch_id=batch_id), timeout=DEADLINE,
                                                metadata=self.c._metadata):
                    pass
                return "batch", "OK", ""
            except grpc.RpcError as exc:
                return "batch", exc.code().name, exc.details() or ""
        params = pb.ExplainParams(method=pb.BASELINE, baseline_method="gradient", timeout=1.0)
        good = pb.BatchItem(request=pb.ExplainRequest(model="mnist-mlp", params=params)).SerializeToString()
        bad = [self.rng.bytes(r(60) + 1), b"\xff\xff\xff\xff", b"\x12\x09\x0a", pb.BatchItem().SerializeToString(),
               pb.BatchItem(options=pb.BatchOptions(job_timeout=float(self.rng.normal()))).SerializeToString()][r(5)]
        items = [good] * (1 + r(3)) + [bad] + [good] * r(3)  # after a request, even valid options are refused
        try:
            self.submit(iter(items), timeout=DEADLINE, metadata=self.c._metadata)
            return "batch", "OK", ""
        except grpc.RpcError as exc:
            return "batch", exc.code().name, exc.details() or ""

    FAMILIES = ("tensor", "image", "text", "onnx", "params", "name", "malformed", "batch")


def _batch_files(server) -> list[str]:
    folder = server.config.store_dir() / "batches"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def fuzz_cases(request) -> int:
    if os.environ.get("SMUG_FUZZ_CASES"):
        return int(os.environ["SMUG_FUZZ_CASES"])
    return 10_000 if request.config.getoption("--fuzz-long", default=False) else 32


def test_fuzzed_requests_get_documented_statuses(request, server, client, nets):

    n = fuzz_cases(request)
    tiny = nets.tiny(seed=5)
    tiny_id = client.register_model(tiny, name="fuzz-tiny").id
    end = time.time() + 30
    while server.service.running and time.time() < end:  # nothing of earlier tests in flight
        time.sleep(0.1)
    rng = np.random.default_rng(int(os.environ.get("SMUG_FUZZ_SEED", "20260")))
    fz = Fuzzer(client, rng, tiny, tiny_id, str(server.service.registry.store))
    restarts = server.pool.replaced
    batches = _batch_files(server)
    restarted: list = []  # the cases after which a worker was replaced
    seen: dict = {}
    bad: list = []
    t0 = time.time()
    spent: dict = {}  # seconds per family
    for i in range(n):
        family = Fuzzer.FAMILIES[i % len(Fuzzer.FAMILIES)]
        t1 = time.time()
        label, code, message = getattr(fz, family)()
        spent[family] = spent.get(family, 0.0) + time.time() - t1
        seen.setdefault(label, {}).setdefault(code, 0)
        seen[label][code] += 1
        leaks = [p.pattern for p in LEAKS if p.search(message)]
        if code not in DOCUMENTED or leaks or len(message) > 700 or fz.store in message:
            bad.append((i, label, code, leaks, message[:300]))
        if server.pool.replaced != restarts + len(restarted):
            restarted.append((i, label, code, message[:300]))
        if (i + 1) % 500 == 0:  # a long run's progress (pytest -s)
            print(f"fuzz: {i + 1} cases in {time.time() - t0:.0f} s, {len(bad)} bad {bad[-1:]}", flush=True)
    took = time.time() - t0
    print(f"{n} fuzzed requests in {took:.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in spent.items())}): {seen}; "
          f"workers replaced after cases {[r[0] for r in restarted]}")
    assert not bad, bad[:10]
    assert client.health() == "SERVING"
    assert "OK" not in seen["batch"] and batches == _batch_files(server), f"a bad batch ran: {seen['batch']}"
    assert server.pool.replaced == restarts, f"a bad input restarted a worker: {restarted}"
    assert all(len(v) for v in seen.values()) and set(seen) == set(Fuzzer.FAMILIES), seen
    assert sum(c.get("INVALID_ARGUMENT", 0) for c in seen.values()) > n // 3, seen


def test_a_zero_first_layer_activation_is_not_an_internal_error(client, nets):
    """A zero input to a bias-free convolution (every first-layer activation zero): an answer or a
    clear refusal, never INTERNAL."""
    tiny = nets.tiny(seed=5)
    model = client.register_model(tiny, name="fuzz-tiny").id
    try:
        e = client.explain(np.zeros((1, 8, 8), np.float32), model=model, top_k=5, timeout=10.0)
        assert e.status in ("optimal", "feasible", "infeasible", "unknown")
    except RemoteError as exc:
        assert exc.code.name in DOCUMENTED, exc
