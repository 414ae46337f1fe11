"""A long batch streams (issue 28): the manifest is read line by line into a spool on disk, the store
is written a chunk at a time, and the submitting process holds only the jobs in flight (an image's
bytes are read when its task is sent)."""

from __future__ import annotations

import json
import os
import tracemalloc
from dataclasses import replace

import pytest

from smug.farm import Store, read_manifest, run
from smug.farm import dispatch as dispatch_module
from smug.farm import spool as spool_module
from smug.farm import worker as worker_module
from smug.farm.dispatch import queued_window
from smug.farm.jobs import Job
from smug.farm.spool import Spool
from smug.farm.worker import noop
from smug.pipeline import ExplainRequest

PAYLOAD = 128 << 10  # bytes of each job's input file (the no-op job never decodes it)
CHUNK = 4  # jobs per Dask task at most: a window of (queued_window(2) + 1) * 4 = 36 jobs


@pytest.fixture(scope="module")
def quiet_client():
    """2 one-thread process workers whose connections keep as few recent messages as those ``run`` makes
    (:data:`smug.farm.engine.LOG_LENGTH`; Dask's default 1000 would hold every input of a short batch)."""
    distributed = pytest.importorskip("distributed")
    import dask

    from smug.farm import cluster, engine

    with dask.config.set({engine.LOG_KEY: engine.LOG_LENGTH}), cluster.settings(retries=1):
        with cluster.embedded(2, "2GiB") as lc, distributed.Client(lc) as c:
            yield c


def test_a_long_batch_holds_only_the_jobs_in_flight(tmp_path, quiet_client, monkeypatch):
    n = 600
    monkeypatch.setattr(dispatch_module, "MAX_CHUNK", CHUNK)  # a small window, so that a short batch is long beside it
    payload = tmp_path / "input.png"
    payload.write_bytes(os.urandom(PAYLOAD))
    base = ExplainRequest.build(str(payload), "mnist-mlp", method="whole-network")
    jobs = (Job(f"{i:064x}", replace(base, name=f"job{i}"), i + 1) for i in range(n))  # a stream, read once
    sent = []
    of = worker_module.WorkerJob.of

    def counted(*args):
        sent.append(1)
        return of(*args)

    monkeypatch.setattr(worker_module.WorkerJob, "of", counted)
    threads = sum(quiet_client.nthreads().values())
    db = tmp_path / "farm.sqlite"
    tracemalloc.start()
    try:
        seen, most = [], 0
        for r in run(jobs, db, client=quiet_client, work=noop):
            seen.append(r.job_id)
            most = max(most, len(sent) - len(seen) + 1)  # sent and not yet answered, this one included
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(seen) == len(set(seen)) == n == len(sent)  # each job sent once, answered once
    with Store(db, create=False) as s:
        assert s.counts() == {"pending": 0, "done": n, "failed": 0, "total": n}
    assert most <= (queued_window(threads) + 1) * CHUNK  # the window, and the chunk whose results are out
    # 32 MB measured: the jobs in flight held a few times (the task, Dask's copies, each connection's 16 recent
    # messages); reading every input at once would hold n * PAYLOAD = 79 MB, twice this bound
    assert peak < n * PAYLOAD / 2, f"{peak / 1e6:.1f} MB traced"
    assert list(run((Job(f"{i:064x}", base, i + 1) for i in range(n)), db, client=quiet_client, work=noop)) == []


def test_a_manifest_is_read_line_by_line_into_a_spool(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_module, "CHUNK", 7)  # many chunks: order and duplicates across their edges
    lines = [json.dumps({"model": "mnist-mlp", "method": "whole-network", "delta": i % 40, "name": f"j{i}"})
             for i in range(60)]
    path = tmp_path / "jobs.jsonl"
    path.write_bytes("\n".join(lines).encode() + b"\n\xff\xfe not UTF-8\n")
    with pytest.raises(ValueError, match="line 61: not UTF-8"):
        read_manifest(path)
    path.write_text("\n".join(lines) + "\n")
    m = read_manifest(path)
    assert isinstance(m.jobs, Spool) and len(m.jobs) == 40
    assert [j.line for j in m.jobs] == list(range(1, 41)) == [j.line for j in m.jobs]  # read again, same order
    assert m.duplicates == tuple((i + 1, i - 39) for i in range(40, 60))
    assert m.jobs[-1].name == "j39" and [j.name for j in m.jobs[3:5]] == ["j3", "j4"]
    assert sum(map(len, m.jobs.chunks())) == 40 and max(map(len, m.jobs.chunks())) == 7
    with pytest.raises(IndexError):
        m.jobs[40]
