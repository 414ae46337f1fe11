"""The farm's submission loop on a real LocalCluster (2 process workers): flow control, chunks, deaths."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from smug.farm.dispatch import CHUNK_SECONDS, MAX_CHUNK, Pending, Task, chunk_size, dispatch, queued_window, scheduler_queues

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import this file


def _square_after(i: int, seconds: float) -> tuple[int, str]:
    """i², and the Dask task that computed it."""
    time.sleep(seconds)
    return i * i, distributed.get_worker().get_current_task()


def _kill_my_worker() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_chunk_size_follows_task_length_and_keeps_the_end_small():
    assert chunk_size(None, 1000, 2) == 1  # nothing measured yet
    assert chunk_size(2.0 * CHUNK_SECONDS, 1000, 2) == 1  # long tasks travel alone
    assert chunk_size(CHUNK_SECONDS / 5, 1000, 2) == 5  # about CHUNK_SECONDS of work
    assert chunk_size(0.0001, 10_000, 2) == MAX_CHUNK
    assert chunk_size(0.01, 16, 2) == 2  # at least 4 Dask tasks per thread left for the end
    assert chunk_size(0.01, 7, 2) == 1


def test_scheduler_queue_hands_each_worker_one_task_at_a_time(client):
    assert scheduler_queues(client)  # the farm's cluster settings (worker-saturation 1.0)
    n = 4 * queued_window(2)
    seen = {"most": 0, "queued": 0}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            seen["most"] = max([seen["most"], *map(len, client.processing().values())])
            seen["queued"] = max(seen["queued"], client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.queued)))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        done = list(dispatch(client, [Task(f"sq-{i}", _square_after, (i, 0.05)) for i in range(n)], chunks=False))
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert sorted(f.key for f in done) == sorted(f"sq-{i}" for i in range(n))
    assert all(f.failure is None and f.value[0] == int(f.key[3:]) ** 2 for f in done)
    assert seen["queued"] > 0  # the scheduler held tasks back ...
    assert seen["most"] == 1  # ... and never gave a worker a second one


def test_short_tasks_travel_in_chunks_and_each_ends_once(client):
    n = 120
    done = list(dispatch(client, [Task(f"ch-{i}", _square_after, (i, 0.002)) for i in range(n)]))
    assert sorted(f.key for f in done) == sorted(f"ch-{i}" for i in range(n))
    assert all(f.failure is None and f.value[0] == int(f.key[3:]) ** 2 and f.attempts == 1 for f in done)
    dask_tasks = {f.value[1] for f in done}
    assert len(dask_tasks) < n / 2  # several tasks per Dask task
    assert len(dask_tasks) >= 4 * 2  # yet the end of the batch stays split over both workers


def test_pending_tasks_are_made_as_they_are_sent(client):
    made: list[int] = []

    def make(i: int) -> Task:
        made.append(i)
        return Task(f"lazy-{i}", _square_after, (i, 0.02))

    n = 60
    made_at_first_result = None
    done = []
    for f in dispatch(client, Pending(range(n), make), chunks=False):
        made_at_first_result = made_at_first_result or len(made)
        done.append(f)
    assert made_at_first_result <= queued_window(2) + 2  # the window in flight, not the batch
    assert sorted(made) == list(range(n)) and sorted(f.value[0] for f in done) == [i * i for i in range(n)]


def test_an_exception_fails_its_task_only(client):
    tasks = [Task(f"ex-{i}", _square_after, (i, 0.0)) for i in range(30)] + [Task("bad", _square_after, ("x", 0.0))]
    done = {f.key: f for f in dispatch(client, tasks)}
    assert done["bad"].failure.startswith("TypeError")
    assert all(done[f"ex-{i}"].failure is None for i in range(30))


def test_a_chunk_that_kills_its_worker_is_split_and_only_the_killer_fails(client):
    """The fixture's cluster allows 1 retry: the chunk dies twice, then each of its tasks runs alone."""
    tasks = [Task(f"k-{i}", _square_after, (i, 0.002)) for i in range(100)]
    tasks.insert(60, Task("killer", _kill_my_worker))  # by then, tasks travel in chunks
    done = list(dispatch(client, tasks, retries=1))
    assert sorted(f.key for f in done) == sorted(t.key for t in tasks)  # each exactly once
    by_key = {f.key: f for f in done}
    assert "killed its worker 2 times" in by_key.pop("killer").failure
    assert all(f.failure is None and f.value[0] == int(f.key[2:]) ** 2 for f in by_key.values())


def _worker_setup(dask_worker=None) -> tuple:
    import dask

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS"), \
        dask.config.get("distributed.worker.profile.enabled"), dask_worker._tick_interval


def _scheduler_housekeeping(dask_scheduler=None) -> tuple:
    return "stealing" in dask_scheduler.extensions, dask_scheduler._tick_interval


def test_embedded_cluster_workers_keep_glibc_adaptive_and_one_thread(monkeypatch):
    """Dask's nanny would set MALLOC_TRIM_THRESHOLD_ in its workers (3x the page faults in a solve); the farm's
    settings drop it and keep the one-thread settings.  (A nanny also writes the variable into its own process's
    environment, from which later workers inherit it: an earlier cluster in this process must not decide.)"""
    from smug.farm import cluster

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with cluster.connect(workers=1) as c:
        assert set(c.run(_worker_setup).values()) == {(None, "1", False, 0.5)}
        assert c.run_on_scheduler(_scheduler_housekeeping) == (False, 0.5)  # no stealing, a quiet event-loop probe
