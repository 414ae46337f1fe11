"""The real distributed path: a `dask scheduler` and two `dask worker` processes over loopback TCP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smug.farm import FarmError, Store, job_of, run
from smug.pipeline import ExplainRequest

distributed = pytest.importorskip("distributed")
DASK = Path(sys.executable).with_name("dask")


@pytest.fixture
def scheduler(tmp_path):
    """``dask scheduler`` plus two ``dask worker`` processes (non-daemonic, 1 thread each); its address."""
    if not DASK.is_file():
        pytest.skip(f"no dask command beside {sys.executable}")
    file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False",
           "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
    procs = [subprocess.Popen([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(file)], env=env, stderr=subprocess.DEVNULL)]
    try:
        t0 = time.time()
        while not file.is_file() and time.time() - t0 < 60:
            time.sleep(0.1)
        procs += [subprocess.Popen([str(DASK), "worker", "--scheduler-file", str(file), "--nthreads", "1",
                                    "--memory-limit", "2GiB", "--no-dashboard"], env=env, stderr=subprocess.DEVNULL)
                  for _ in range(2)]
        address = json.loads(file.read_text())["address"]
        with distributed.Client(address, timeout=60) as c:
            c.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                p.kill()


def test_batch_on_a_separate_scheduler_and_workers(scheduler, tmp_path, digits):
    requests = [ExplainRequest.build(d, "mnist-mlp", method="whole-network", timeout=10) for d in digits[:4]]
    db = tmp_path / "r.sqlite"
    results = list(run(requests, store=db, scheduler=scheduler))
    assert sorted(r.job_id for r in results) == sorted(job_of(r).id for r in requests)
    assert all(r.state == "done" and r.status == "optimal" for r in results), [r.reason for r in results]
    assert len({r.worker for r in results}) == 2  # both workers took jobs
    with Store(db) as s:
        assert s.counts()["done"] == 4


def test_daemonic_workers_are_refused_before_anything_runs(tmp_path):
    import dask

    # daemonic workers, whatever this process's Dask configuration holds now (a farm run still suspended
    # in another test of the same process keeps distributed.worker.daemon False until it is closed)
    with dask.config.set({"distributed.worker.daemon": True}), \
            distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
            distributed.Client(lc) as c:
        with pytest.raises(FarmError, match="DASK_DISTRIBUTED__WORKER__DAEMON=False"):
            list(run([ExplainRequest.build(None, "mnist-mlp", method="whole-network")], store=tmp_path / "r.sqlite",
                     client=c))
