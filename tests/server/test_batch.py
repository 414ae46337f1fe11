"""SubmitBatch / WatchBatch on a live server: the service is the farm's client (smug.server.batch).

Every job's answer equals the single-request pipeline's on the same input; identical requests
are one job; resubmitting the same requests returns the same batch and runs nothing again;
watching again replays every finished job; bad items are refused naming their position."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from smug.proto import load
from smug.proto.wire import from_tensor, to_tensor

pb, pb_grpc = load()


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.SmugStub(channel)


@pytest.fixture(scope="module")
def digits(mnist_test_split):
    x_test, _ = mnist_test_split
    return [x_test[i].astype(np.float32) for i in range(3)]


def _request(x: np.ndarray) -> "pb.ExplainRequest":
    return pb.ExplainRequest(model="mnist-mlp", tensor=to_tensor(pb, x),
                             params=pb.ExplainParams(method=pb.WHOLE_NETWORK, timeout=20))


def _items(requests, options=None):
    if options is not None:
        yield pb.BatchItem(options=options)
    for r in requests:
        yield pb.BatchItem(request=r)


def _watch(stub, batch_id: str):
    jobs, counts = [], []
    for ev in stub.WatchBatch(pb.WatchBatchRequest(batch_id=batch_id), timeout=240):
        (jobs if ev.WhichOneof("event") == "job" else counts).append(getattr(ev, ev.WhichOneof("event")))
    return jobs, counts


def test_a_batch_runs_on_the_farm_and_matches_single_requests(stub, digits):
    from smug.pipeline import ExplainRequest, run

    requests = [_request(x) for x in digits] + [_request(digits[0])]  # the last one repeats the first
    info = stub.SubmitBatch(_items(requests, pb.BatchOptions(job_timeout=60)), timeout=60)
    assert info.jobs == 3 and info.pending + info.done == 3
    jobs, counts = _watch(stub, info.batch_id)
    assert sorted(tuple(j.items) for j in jobs) == [(0, 3), (1,), (2,)]  # each job once, items mapped
    assert counts[-1].done == 3 and counts[-1].pending == 0 and counts[-1].failed == 0
    for job in jobs:
        assert job.state == "done", job.reason
        mine = run(ExplainRequest.build(digits[job.items[0]], "mnist-mlp", method="whole-network", timeout=20))
        r = job.result
        assert (r.status, r.objective, r.target) == (mine.status, mine.objective, mine.target)
        assert np.array_equal(from_tensor(r.mask), mine.mask)  # the same optimal mask, re-certified by the pipeline
        assert r.certificate.valid and "mnist-mlp" in r.result_json and "/" not in r.model_id
    again = stub.SubmitBatch(_items(requests), timeout=60)  # the same requests: the same batch, nothing re-run
    assert (again.batch_id, again.done, again.pending) == (info.batch_id, 3, 0)
    replay, _ = _watch(stub, info.batch_id)
    assert sorted(j.job_id for j in replay) == sorted(j.job_id for j in jobs)
    assert all(j.attempts == r.attempts for j, r in zip(sorted(jobs, key=lambda j: j.job_id),
                                                          sorted(replay, key=lambda j: j.job_id)))


def test_bad_batches_are_refused_naming_the_item(stub, digits):
    bad = [_request(digits[0]), pb.ExplainRequest(model="mnist-mlp", tensor=to_tensor(pb, np.zeros((3, 3), np.float32)))]
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitBatch(_items(bad), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "request 1" in err.value.details()
    for items, words in [((), "no requests"),
                         (_items([_request(digits[0])], pb.BatchOptions(job_timeout=-1)), "job_timeout"),
                         (_items([_request(digits[0])], pb.BatchOptions(retries=99)), "retries"),
                         ([pb.BatchItem(request=_request(digits[0])), pb.BatchItem(options=pb.BatchOptions())],
                          "options come first")]:
        with pytest.raises(grpc.RpcError) as err:
            stub.SubmitBatch(iter(items), timeout=30)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and words in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        list(stub.WatchBatch(pb.WatchBatchRequest(batch_id="0" * 32), timeout=30))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_python_client_submits_and_watches(client, digits):
    from smug.clients.client import BatchCounts, BatchJob

    info = client.submit_batch([{"source": x, "model": "mnist-mlp", "method": "whole-network", "timeout": 20}
                                for x in digits[:2]], job_timeout=60)
    events = list(client.watch_batch(info.batch_id, deadline=240))
    jobs = [e for e in events if isinstance(e, BatchJob)]
    assert isinstance(events[-1], BatchCounts) and events[-1].pending == 0
    assert sorted(j.items for j in jobs) == [(0,), (1,)]
    for j in jobs:
        e = j.explanation
        assert j.state == "done" and e.status == "optimal" and e.certificate["valid"]
        assert e.keeps_class  # the pipeline's forward pass on the masked input


def _sent(job) -> str:
    """The sha256 of the input a job's answer explains (result.json's input_sha256)."""
    import json

    return json.loads(job.result.result_json)["input_sha256"]


def _sha(x: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float64).tobytes()).hexdigest()


def test_positions_follow_each_submissions_order(stub, digits):
    """Issue 28.4: the same requests resubmitted in another order get positions of their own order
    (every answer at position i explains input i), and nothing runs again."""
    first = [_request(digits[1]), _request(digits[2])]
    info = stub.SubmitBatch(_items(first, pb.BatchOptions(job_timeout=60)), timeout=60)
    jobs, _ = _watch(stub, info.batch_id)
    assert sorted(tuple(j.items) for j in jobs) == [(0,), (1,)]
    order = [digits[2], digits[1], digits[2]]
    again = stub.SubmitBatch(_items([_request(x) for x in order]), timeout=60)
    assert again.batch_id != info.batch_id and (again.jobs, again.done, again.pending) == (2, 2, 0)
    replay, _ = _watch(stub, again.batch_id)
    assert sorted(tuple(j.items) for j in replay) == [(0, 2), (1,)]
    for job in replay:
        assert job.state == "done" and all(_sent(job) == _sha(order[i]) for i in job.items)
    attempts = {j.job_id: j.attempts for j in jobs}
    assert {j.job_id: j.attempts for j in replay} == attempts  # the same jobs, not run again
    jobs, _ = _watch(stub, info.batch_id)  # the first submission's id still maps its own order
    assert all(_sent(job) == _sha(digits[1 + job.items[0]]) for job in jobs)


def test_a_plain_and_a_keep_class_request_are_two_jobs(stub, digits):
    """Issue 27: one input, a plain and a keep-class first-layer request: two jobs, each its own answer."""
    import json

    def request(**kw):
        return pb.ExplainRequest(model="mnist-mlp", tensor=to_tensor(pb, digits[0]),
                                 params=pb.ExplainParams(method=pb.FIRST_LAYER, top_k=30, timeout=20, **kw))

    info = stub.SubmitBatch(_items([request(), request(keep_class=True)], pb.BatchOptions(job_timeout=60)),
                            timeout=60)
    assert info.jobs == 2
    jobs, _ = _watch(stub, info.batch_id)
    by_item = {j.items[0]: json.loads(j.result.result_json) for j in jobs}
    assert sorted(by_item) == [0, 1] and all(len(j.items) == 1 and j.state == "done" for j in jobs)
    assert by_item[0]["request"]["keep_class"] is None and "keep_class" not in by_item[0]["encoding"]
    assert by_item[1]["request"]["keep_class"] == {"min_confidence": None} and by_item[1]["encoding"]["keep_class"]
    assert by_item[0]["identity"] != by_item[1]["identity"]


def test_an_alias_added_to_an_uploaded_model_changes_no_batch(stub, nets):
    """Issue 28.3: the registry keeps its own metadata (aliases) beside an upload; adding an alias to the
    same bytes keeps every job id, so a finished batch is found finished and nothing runs again."""
    data = nets.tiny(seed=27)
    first = stub.RegisterModel(pb.RegisterModelRequest(onnx=data, name="id-alias-a"), timeout=60)
    x = np.random.default_rng(27).random((1, 8, 8)).astype(np.float32)

    def items(model):
        return _items([pb.ExplainRequest(model=model, tensor=to_tensor(pb, x + k),
                                         params=pb.ExplainParams(method=pb.WHOLE_NETWORK, timeout=20))
                       for k in range(2)], pb.BatchOptions(job_timeout=60))

    info = stub.SubmitBatch(items("id-alias-a"), timeout=60)
    jobs, counts = _watch(stub, info.batch_id)
    assert counts[-1].done == 2 and all(j.state == "done" for j in jobs)
    again = stub.RegisterModel(pb.RegisterModelRequest(onnx=data, name="id-alias-b"), timeout=60)
    assert again.id == first.id and {"id-alias-a", "id-alias-b"} <= set(again.aliases)
    for model in ("id-alias-a", "id-alias-b", first.id):
        resubmitted = stub.SubmitBatch(items(model), timeout=60)
        assert (resubmitted.batch_id, resubmitted.done, resubmitted.pending) == (info.batch_id, 2, 0), model
    replay, _ = _watch(stub, info.batch_id)
    assert sorted((j.job_id, j.attempts) for j in replay) == sorted((j.job_id, j.attempts) for j in jobs)
