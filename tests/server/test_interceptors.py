"""The wire guard on request streams (smug.server.interceptors.WireGuard), on the live server.

A ``SubmitBatch`` stream whose item does not parse, or that its client abandons mid-way, runs
nothing: the client hears ``INVALID_ARGUMENT`` naming the item (or its own deadline), and the
log says the same (never ``OK``, never ``INTERNAL``)."""

from __future__ import annotations

import json
import threading
import time

import grpc
import numpy as np
import pytest

from smug.proto import load
from smug.proto.wire import to_tensor

pb, pb_grpc = load()


def _item(seed: int) -> bytes:
    """A valid SubmitBatch item no other test submits (an input of its own)."""
    x = np.random.default_rng(seed).random((1, 28, 28)).astype(np.float32)
    return pb.BatchItem(request=pb.ExplainRequest(model="mnist-mlp", tensor=to_tensor(pb, x), params=pb.ExplainParams(
        method=pb.WHOLE_NETWORK, timeout=20))).SerializeToString()


def _batch_files(server) -> set[str]:
    folder = server.config.store_dir() / "batches"
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _logged(caplog, rpc: str) -> list[dict]:
    lines = [json.loads(r.message) for r in caplog.records if r.name == "smug.server" and r.message.startswith("{")]
    return [line for line in lines if line.get("rpc") == rpc and "request_id" in line]  # the request log lines


@pytest.fixture
def raw_submit(server):
    """SubmitBatch taking items as raw bytes (so a test can send one that does not parse)."""
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel.stream_unary("/smug.v1.Smug/SubmitBatch", request_serializer=lambda b: b,
                                   response_deserializer=pb.BatchInfo.FromString)


def test_a_malformed_item_runs_nothing_and_is_named(server, raw_submit, caplog):
    before = _batch_files(server)
    with caplog.at_level("INFO", logger="smug.server"):
        for bad in (b"\xff\xff\xff\xff", b"\x12\x09\x0a"):  # a bad wire type; a field cut short
            with pytest.raises(grpc.RpcError) as err:
                raw_submit(iter([_item(1), bad, _item(2)]), timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
            assert "item 1" in err.value.details() and "SubmitBatch" in err.value.details()
    assert _batch_files(server) == before  # no store, no batch: the first item did not run
    codes = [line["code"] for line in _logged(caplog, "SubmitBatch")]
    assert codes == ["INVALID_ARGUMENT", "INVALID_ARGUMENT"]


def test_a_deadline_mid_stream_runs_nothing_and_is_logged_as_a_deadline(server, raw_submit, caplog):
    before = _batch_files(server)
    release = threading.Event()

    def slow():
        yield _item(3)
        release.wait(10)  # the client's deadline passes before the stream ends
        yield _item(4)

    with caplog.at_level("INFO", logger="smug.server"):
        with pytest.raises(grpc.RpcError) as err:
            raw_submit(slow(), timeout=2.5)
        release.set()
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        end = time.time() + 10
        while not _logged(caplog, "SubmitBatch") and time.time() < end:
            time.sleep(0.05)
    assert [line["code"] for line in _logged(caplog, "SubmitBatch")] == ["DEADLINE_EXCEEDED"]
    assert not any(r.exc_info for r in caplog.records)  # no traceback: nothing went wrong in the server
    assert _batch_files(server) == before
