"""Where a batch runs: the user's ``distributed.Client``, a scheduler's address, or an embedded LocalCluster.

The embedded cluster has one process worker per core (``workers``), one thread each,
and a memory limit per worker: past it the worker's nanny kills and restarts the
worker, and the scheduler re-runs its job elsewhere.  A job that kills
``allowed_failures + 1`` workers ends as ``KilledWorker`` (recorded as failed).  Two Dask
settings matter and are set here for the embedded cluster (on a real cluster, set them
where the scheduler and the workers start, see the README):

* ``distributed.worker.daemon: False`` — the pipeline runs each solve in a child process,
  which a daemonic worker process may not start
  (``DASK_DISTRIBUTED__WORKER__DAEMON=False dask worker tcp://HOST:8786``);
* ``distributed.scheduler.allowed-failures`` — how many worker deaths a job may cause
  before it fails (the farm's ``retries``;
  ``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=2 dask scheduler``);
* ``distributed.scheduler.worker-saturation: 1.0`` — the scheduler queues the farm's jobs
  and hands a worker one per thread as it frees up, without a round trip through the
  submitter (``DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION=1.0 dask scheduler``; with
  Dask's default 1.1 the submitter does the flow control, see :mod:`smug.farm.dispatch`);
* no ``MALLOC_TRIM_THRESHOLD_`` in the workers' environment (Dask's nanny sets it by
  default): with any malloc tunable set, glibc stops adapting its mmap threshold, so each
  numpy temporary of a job is mapped afresh; measured on MNIST whole-network jobs, 3x the
  page faults in a solve and about 3% more time a job (the solve child resets it anyway);
* no statistical profiler in the workers (``distributed.worker.profile.enabled: False``):
  it samples every 10 ms for the dashboard's profile page, about 1% of a core per worker;
* quieter housekeeping (:data:`QUIET`): each Dask server (the scheduler, every nanny and
  worker) measures its event loop every 20 ms by default, a diagnostic only; the system
  monitor samples every 0.5 s for the dashboard; work stealing rebalances every 0.1 s
  although the farm never gives a worker a second task to steal.  Measured on an idle
  embedded cluster of 2 workers: 17% of a core in all by default, 6% with these
  (``bench/farm.py``, the "Idle housekeeping" rows).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
from typing import Iterator

from smug.farm.dispatch import SATURATION_KEY

DASHBOARD = importlib.util.find_spec("bokeh") is not None  # Dask can serve its dashboard only with bokeh


LOOPBACK = "127.0.0.1"  # where an embedded cluster listens
QUIET = {"distributed.admin.tick.interval": "500ms", "distributed.admin.system-monitor.interval": "2s",
         "distributed.scheduler.work-stealing": False}


NO_HTTP = {"distributed.scheduler.http.routes": [], "distributed.worker.http.routes": []}
PROBE_SECONDS = 5.0  # how long a scheduler's port may take to accept a connection (check_scheduler)


def check_scheduler(address: str) -> None:
    """Refuse, with one line (``ValueError``), a scheduler address Dask cannot parse or a TCP/TLS address
    where nothing accepts connections: run before a store is written, so a typo costs nothing.  A plain
    connection is tried (a refused one fails at once; Dask itself would retry until its timeout)."""
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    shown = f"the scheduler address {address!r}"
    try:
        scheme, location = parse_address(address, strict=False)
        if scheme not in ("tcp", "tls"):
            return  # another transport (ucx, inproc): Dask's Client checks it
        host, port = parse_host_port(location)
    except (ValueError, TypeError):
        raise ValueError(f"{shown} is not a Dask scheduler's address (tcp://HOST:PORT)") from None
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        why = "connection refused" if isinstance(exc, ConnectionRefusedError) else (
            f"no answer within {PROBE_SECONDS:g} s" if isinstance(exc, TimeoutError) else "unreachable")
        raise ValueError(f"no Dask scheduler at {address} ({why}); start one with `dask scheduler` "
                         f"or leave the scheduler out for an embedded cluster") from None


@contextlib.contextmanager
def settings(retries: int, quiet: bool = True, dashboard: bool = False) -> Iterator[None]:
    """The Dask configuration of an embedded cluster, for its whole life (nannies read it on restarts);
    ``quiet=False`` keeps Dask's own housekeeping intervals (:data:`QUIET`), for comparison.  Without
    ``dashboard`` the HTTP servers Dask starts anyway (the scheduler's ``/metrics``, ``/info`` pages,
    JSON API and a proxy to the workers; each worker's ``/metrics``) serve no page (:data:`NO_HTTP`)."""
    import dask

    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
               if k != "MALLOC_TRIM_THRESHOLD_"}
    with dask.config.set({"distributed.worker.daemon": False, "distributed.scheduler.allowed-failures": int(retries),
                          SATURATION_KEY: 1.0, "distributed.nanny.pre-spawn-environ": environ,
                          "distributed.worker.profile.enabled": False, **(QUIET if quiet else {}),
                          **({} if dashboard else NO_HTTP)}):
        yield


@contextlib.contextmanager
def connect(client=None, workers: int | None = None, scheduler: str | None = None, retries: int = 2,
            memory_limit: str | int | None = "auto", dashboard: str | None = None) -> Iterator[object]:
    """A ``distributed.Client``: ``client`` itself, one connected to ``scheduler``, or one of a new
    LocalCluster (:func:`embedded`; ``dashboard``: where it serves Dask's dashboard, none by default)."""
    from distributed import Client

    if client is not None:
        yield client
        return
    if scheduler is not None:
        if workers is not None:
            raise ValueError("give either a number of workers (a local cluster) or a scheduler's address, not both")
        check_scheduler(scheduler)
        with Client(scheduler) as c:
            yield c
        return
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ValueError(f"need at least one worker, got {n}")
    with settings(retries, dashboard=dashboard is not None):
        with embedded(n, memory_limit, dashboard) as cluster, Client(cluster) as c:
            yield c


def embedded(workers: int, memory_limit: str | int | None = "auto", dashboard: str | None = None):
    """A LocalCluster of ``workers`` process workers (one thread each) reachable from this machine only: the
    scheduler, nannies and workers listen on :data:`LOOPBACK`, and Dask's dashboard (scheduler logs,
    worker addresses, exceptions, ``/metrics``, unauthenticated) is off unless ``dashboard`` names
    an address (a bare ``:PORT`` binds loopback too).  Dask's own warnings as workers stop (a task
    cancelled at shutdown) are kept out of the user's terminal; errors still show."""
    import logging

    from distributed import LocalCluster

    if dashboard is not None and dashboard.startswith(":"):
        dashboard = f"{LOOPBACK}{dashboard}"
    # without a dashboard, the scheduler's HTTP server (started anyway) takes any free loopback port, not 8787
    http = {} if dashboard else {"scheduler_kwargs": {"dashboard": False, "dashboard_address": f"{LOOPBACK}:0"}}
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                        host=LOOPBACK, dashboard_address=dashboard, silence_logs=logging.ERROR, **http)


def dashboard(client) -> str | None:
    """The Dask dashboard's address, when the cluster serves one (bokeh installed, and asked for)."""
    if not DASHBOARD:
        return None
    try:
        return client.dashboard_link or None
    except KeyError:  # a scheduler without a dashboard
        return None


def total_threads(client) -> int:
    """Worker threads the scheduler knows now."""
    return sum(client.nthreads().values())
