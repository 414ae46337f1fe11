"""The batch farm on Dask (issue 12): throughput against a plain loop, a worker killed, scheduling overhead.

    python -m smug.bench.farm                                  # writes docs/benchmarks.md
    python -m smug.bench.farm --jobs 20 --rounds 1 --overhead-jobs 50 --overhead-workers 1,2 --no-doc   # quick look
    python -m smug.bench.farm --jobs 100000 --noop             # the farm alone at scale (its own section)

Jobs: whole-network masks of the MNIST MLP (``--jobs`` held-out test digits, the farm's
default solver timeout 10 s).  Measured on one machine:

* ``--rounds`` interleaved rounds of: a plain one-thread loop over the jobs
  (``smug.pipeline.run``, one after the other, a worker's thread settings), ``smug.farm.run``
  on a fresh embedded LocalCluster of 1 and then 2 process workers, 2 processes on a
  shared queue (no Dask), and the loop again; each round's speed-ups are against the mean
  of its two loops, and the medians over the rounds are reported (the machine's noise,
  ±10% on one run, is larger than the effects measured); every farm answer is checked
  against the loop's (status, objective);
* 2 workers with one worker SIGKILLed after a third of the results: lost and duplicated
  jobs (both must be 0) and the time to finish;
* per-job scheduling overhead: ``--overhead-jobs`` jobs that do nothing, through the farm's
  own submission path (one job per worker thread in flight), at 1..32 process workers on
  loopback; overhead per job = wall time / jobs x workers.

``--noop`` measures the farm alone at scale instead: a JSONL manifest of ``--jobs`` distinct
requests (MNIST digit PNGs x timeouts; the requests are validated and identified as usual)
goes through ``smug farm run``'s path (the manifest read into a spool, the store written a
chunk at a time, the tasks sent as workers free up, each result committed), with workers
that run :func:`smug.farm.worker.noop` instead of the pipeline, on a fresh embedded
LocalCluster (process workers, one thread each, loopback) per run, each run in a fresh
process: the submitting process's peak RSS (it holds Dask's scheduler too) at ``--jobs``
and a tenth of it, and the throughput at each of ``--noop-workers``.

Optionally (``--lite0 N``) N EfficientNet-Lite0 first-layer jobs (ImageNet photos from
``--data``) the same way, in ``--lite0-rounds`` rounds (default 1: a round of 20 jobs of
about 12 s takes about 20 minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from smug.bench.common import add_doc_args, invocation, parser, photos, publish, table, uptime
from smug.bench.datasets import mnist_split

TITLE = "Batch farm on Dask (issue 12)"


def mnist_requests(n: int, timeout: float):
    from smug.pipeline import ExplainRequest

    _, _, x_test, _ = mnist_split()
    return [ExplainRequest.build(x_test[i], "mnist-mlp", method="whole-network", timeout=timeout, name=f"test{i}")
            for i in range(n)]


def lite0_requests(files, timeout: float):
    from smug.pipeline import ExplainRequest

    return [ExplainRequest.build(str(f), "efficientnet-lite0", top_k=3000, timeout=timeout) for f in files]


def loop(requests) -> dict:
    """A plain in-process loop: total seconds, seconds after the first job, each job's (status, objective)."""
    from smug.farm.jobs import job_id
    from smug.pipeline import run

    t0 = time.perf_counter()
    answers, first = {}, None
    for r in requests:
        e = run(r)
        answers[job_id(r)] = (e.status, e.objective)
        first = first or time.perf_counter()
    end = time.perf_counter()
    return {"total": end - t0, "batch": end - t0, "steady": end - first, "answers": answers}


# Dask's nanny starts each worker with these (distributed.nanny.pre-spawn-environ): one thread per worker
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def loop_one_thread(workload: str, n: int, timeout: float, data: Path | None) -> dict:
    """:func:`loop` in a fresh process with a worker's thread settings (answers keyed as in this process)."""
    argv = [sys.executable, "-m", "smug.bench.farm", "--loop-only", workload, "--jobs", str(n), "--lite0", str(n),
            "--timeout", str(timeout)] + (["--data", str(data)] if data else [])
    out = subprocess.run(argv, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    doc["answers"] = {k: tuple(v) for k, v in doc["answers"].items()}
    return doc


def _answer(request) -> tuple:
    from smug.pipeline import run

    e = run(request)
    return e.status, e.objective


def process_pool(requests, workers: int) -> dict:
    """The ceiling for any engine on this machine: ``workers`` fresh processes (a worker's thread
    settings) taking the jobs one at a time from a shared queue (``ProcessPoolExecutor``)."""
    import concurrent.futures as cf
    import multiprocessing

    from smug.farm.jobs import job_id

    t0 = time.perf_counter()
    saved = {k: os.environ.get(k) for k in ONE_THREAD}
    os.environ.update(ONE_THREAD)  # inherited by the spawned processes
    with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(_answer, requests[:workers]))  # imports and model loads, as a worker's start
        t1 = time.perf_counter()
        futures = {pool.submit(_answer, r): job_id(r) for r in requests}
        answers, first = {}, None
        for f in cf.as_completed(futures):
            answers[futures[f]] = f.result()
            first = first or time.perf_counter()
        t2 = time.perf_counter()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k)
        else:
            os.environ[k] = v
    return {"total": time.perf_counter() - t0, "batch": t2 - t1, "steady": t2 - first, "answers": answers}


def farm(requests, workers: int, kill_after: int | None = None) -> dict:
    """One farm run on a fresh LocalCluster; total and batch seconds, results, the killed pid."""
    import distributed

    from smug.farm import cluster, run

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, cluster.settings(retries=2):
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as lc, distributed.Client(lc) as c:
            c.wait_for_workers(workers)
            t1 = time.perf_counter()
            results, killed, first = [], None, None
            for r in run(requests, store=Path(tmp) / "farm.sqlite", client=c):
                results.append(r)
                first = first or time.perf_counter()
                if kill_after is not None and killed is None and len(results) >= kill_after:
                    busy = [w for w, keys in c.processing().items() if keys]
                    killed = c.run(os.getpid)[busy[0]] if busy else None
                    if killed:
                        os.kill(killed, signal.SIGKILL)
            t2 = time.perf_counter()
    return {"total": time.perf_counter() - t0, "batch": t2 - t1, "steady": t2 - first, "results": results,
            "killed": killed}


def workload(kind: str, a) -> list:
    """The benchmark's requests: MNIST whole-network (``--jobs``) or Lite0 first-layer (``--lite0``)."""
    if kind == "mnist":
        return mnist_requests(a.jobs, a.timeout)
    return lite0_requests(photos(a.data, a.lite0) if a.data else photos(n=a.lite0), 60.0)


def check_loop(doc: dict, answers: dict) -> str:
    """Answers of another loop that differ from the first loop's."""
    return f"differ {sum(1 for k, v in doc['answers'].items() if answers.get(k) != v)}"


def check(results, answers) -> str:
    """Lost, duplicated and failed jobs, answers differing from the loop's (and the first failure's reason)."""
    ids = [r.job_id for r in results]
    lost = len(set(answers) - set(ids))
    dup = len(ids) - len(set(ids))
    failed = [r.reason for r in results if r.state != "done"]
    differ = sum(1 for r in results if r.state == "done" and (r.status, r.objective) != answers.get(r.job_id))
    why = f" ({failed[0]})" if failed else ""
    return f"lost {lost}, dup {dup}, failed {len(failed)}{why}, differ {differ}"


def _noop(i: int) -> int:
    return i


FLOWS = [("one per thread", False, False), ("scheduler queue", True, False), ("scheduler queue + chunks", True, True)]


def noop_overhead(n: int, workers: int, queue: bool, chunks: bool) -> tuple[float, float]:
    """(wall seconds for n no-op jobs through the farm's submission loop, per-job overhead in ms x workers)."""
    import distributed

    from smug.farm import cluster
    from smug.farm.dispatch import Task, dispatch

    with cluster.settings(retries=2), distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                               dashboard_address=":0") as lc, distributed.Client(lc) as c:
        c.wait_for_workers(workers)
        t0 = time.perf_counter()
        done = sum(1 for _ in dispatch(c, [Task(f"noop-{i}", _noop, (i,)) for i in range(n)], queue=queue,
                                       chunks=chunks))
        wall = time.perf_counter() - t0
    assert done == n
    return wall, 1000 * wall / n * workers


NOOP_IMAGES = 1000  # digit PNGs of a --noop manifest: line i asks image i % 1000, timeout 10 s + i // 1000 ms


def noop_manifest(folder: Path, n: int) -> Path:
    """A JSONL manifest of ``n`` distinct whole-network requests on :data:`NOOP_IMAGES` MNIST digit PNGs."""
    from PIL import Image

    _, _, x_test, _ = mnist_split()
    for i in range(NOOP_IMAGES):
        png = folder / f"d{i}.png"
        if not png.exists():
            Image.fromarray((x_test[i % len(x_test)].reshape(28, 28) * 255).astype("uint8"), mode="L").save(png)
    path = folder / f"noop-{n}.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"input": f"d{i % NOOP_IMAGES}.png", "model": "mnist-mlp", "method": "whole-network",
                                "timeout": 10 + (i // NOOP_IMAGES) / 1000}) + "\n")
    return path


def rss_mb() -> float:
    """This process's resident memory now (MB, Linux)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


class PeakRss:
    """The largest :func:`rss_mb` seen every 10 ms while it runs (``with PeakRss() as p: ...; p.peak``)."""

    def __enter__(self) -> "PeakRss":
        import threading

        self.peak, self.stop = rss_mb(), threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def _watch(self) -> None:
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, rss_mb())


def noop_child(manifest: Path, workers: int) -> dict:
    """One ``--noop`` run in this (fresh) process: ``smug farm run``'s path with no-op workers."""
    from smug.farm import Store, read_manifest, run
    from smug.farm.worker import noop

    cpu = lambda: sum(os.times()[:2])  # noqa: E731 (this process)
    start, c0, t0 = rss_mb(), cpu(), time.perf_counter()
    with PeakRss() as peak, tempfile.TemporaryDirectory() as tmp:
        jobs = read_manifest(manifest).checked().jobs
        read, c1 = time.perf_counter() - t0, cpu()
        results, t1 = 0, None  # counted, not kept: the store says which jobs ended
        for _ in run(jobs, Path(tmp) / "farm.sqlite", workers=workers, work=noop):
            results += 1
            t1 = t1 or time.perf_counter()
        t2 = time.perf_counter()
        with Store(Path(tmp) / "farm.sqlite", create=False) as s:
            ended = s.counts()["done"]  # a row per job id, done when its first result came
    return {"jobs": len(jobs), "read_s": read, "read_cpu": c1 - c0, "run_s": t2 - t0 - read, "steady_s": t2 - t1,
            "cpu_s": cpu() - c1, "rss_start": start, "rss_peak": peak.peak, "done": ended, "dup": results - ended}


def noop_scale(a) -> str:
    """The ``--noop`` section: peak memory at a tenth of ``--jobs`` and at ``--jobs``, throughput per worker count."""
    small = max(1, a.jobs // 10)
    counts = [int(w) for w in a.noop_workers.split(",")]
    runs = [(small, w) for w in counts] + [(a.jobs, w) for w in map(int, a.noop_large_workers.split(","))]
    rows, peaks = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        manifests = {n: noop_manifest(folder, n) for n in sorted({small, a.jobs})}
        for n, w in runs:
            argv = [sys.executable, "-m", "smug.bench.farm", "--noop-child", str(manifests[n]),
                    "--noop-workers", str(w)]
            doc = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            peaks.setdefault(w, {})[n] = doc["rss_peak"]
            rows.append([f"{n:,}", w, f"{doc['read_s']:.1f}", f"{doc['run_s']:.1f}", f"{n / doc['run_s']:.0f}",
                         f"{n / doc['steady_s']:.0f}", f"{doc['cpu_s']:.1f}", f"{doc['rss_start']:.0f}",
                         f"{doc['rss_peak']:.0f}", f"lost {n - doc['done']}, dup {doc['dup']}"])
    growth = [f"{w} worker{'s' if w > 1 else ''}: {(p[a.jobs] - p[small]) / ((a.jobs - small) / 10_000):+.2f} MB "
              f"per 10k jobs ({p[small]:.0f} MB at {small:,}, {p[a.jobs]:.0f} MB at {a.jobs:,})"
              for w, p in peaks.items() if a.jobs in p and small in p and a.jobs > small]
    return (f"**No-op jobs through `smug farm run`'s path** (a manifest of distinct whole-network requests, read "
            f"into a spool, recorded in the store a chunk at a time, sent as workers free up; workers run "
            f"`smug.farm.worker.noop`; a fresh process and embedded LocalCluster of process workers, one thread each, "
            f"on loopback, per row; run: first submission to last result, cluster start included; steady: from the "
            f"first result; CPU: the submitting process during the run, Dask's scheduler included; RSS: its "
            f"resident memory before reading the manifest (smug imported), and the most seen every 10 ms from there to "
            f"the end)\n\n"
            + "\n".join(table(["jobs", "workers", "read manifest s", "run s", "jobs/s (run)", "jobs/s (steady)",
                               "submitter CPU s", "RSS at start MB", "peak RSS MB", "check"], rows))
            + ("\n\nPeak memory growth of the submitting process: " + "; ".join(growth) if growth else ""))


def idle_cpu(workers: int, quiet: bool, seconds: float = 20.0) -> tuple[float, float]:
    """Percent of one core used by an idle embedded cluster: (the client's process, which holds the
    scheduler and the nannies; all the workers together), with the farm's housekeeping or Dask's own."""
    import distributed
    import psutil

    from smug.farm import cluster

    with cluster.settings(retries=2, quiet=quiet), distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
            distributed.Client(lc) as c:
        c.wait_for_workers(workers)
        time.sleep(2.0)  # past the start-up
        me, pids = psutil.Process(), list(c.run(os.getpid).values())
        procs = [me] + [psutil.Process(p) for p in pids]
        before = [sum(p.cpu_times()[:2]) for p in procs]
        time.sleep(seconds)
        used = [100 * (sum(p.cpu_times()[:2]) - b) / seconds for p, b in zip(procs, before)]
    return used[0], sum(used[1:])


@dataclass(frozen=True)
class Round:
    """One run in one round: its times, its speed-ups against the round's loops (nan: none), its check."""

    batch: float
    steady: float
    batch_speedup: float
    steady_speedup: float
    check: str


def _ratio(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}x"


def _row(name: str, per: list[Round], n: int) -> list[str]:
    """A table row: medians over the rounds, the range of the steady speed-up, the checks seen."""
    med = statistics.median
    steady = [r.steady_speedup for r in per]
    spread = f"{min(steady):.2f}-{max(steady):.2f}" if len(per) > 1 and not math.isnan(steady[0]) else "-"
    return [name, f"{med(r.batch for r in per):.1f}", f"{1000 * med(r.steady for r in per) / (n - 1):.0f}",
            f"{med(60 * n / r.batch for r in per):.0f}", _ratio(med(r.batch_speedup for r in per)),
            _ratio(med(steady)), spread, "; ".join(sorted({r.check for r in per}))]


def throughput(key: str, label: str, requests: list, a, rounds: int) -> str:
    """Interleaved rounds (one-thread loop, farm at 1 and 2 workers, the 2-process pool, the loop again):
    each round's speed-ups are against the mean of its two loops; the table gives medians over rounds."""
    n = len(requests)
    plain = loop(requests)
    answers = plain["answers"]
    nan = float("nan")
    runs: dict[str, list[Round]] = {"in-process loop (default threads, once)": [
        Round(plain["batch"], plain["steady"], nan, nan, "-")]}
    for _ in range(rounds):
        before = loop_one_thread(key, n, a.timeout, a.data)
        got = {"farm, 1 worker": farm(requests, 1), "farm, 2 workers": farm(requests, 2),
               "2 processes on a shared queue (the ceiling, no Dask)": process_pool(requests, 2)}
        after = loop_one_thread(key, n, a.timeout, a.data)
        base = {k: (before[k] + after[k]) / 2 for k in ("batch", "steady")}
        got = {"in-process loop, one thread (a worker's settings)": before, **got,
               "in-process loop, one thread, again": after}
        for name, r in got.items():
            why = check(r["results"], answers) if "results" in r else check_loop(r, answers)
            runs.setdefault(name, []).append(Round(r["batch"], r["steady"], base["batch"] / r["batch"],
                                                   base["steady"] / r["steady"], why))
    if key == "mnist":
        r = farm(requests, 2, kill_after=max(1, n // 3))
        retried = sum(1 for x in r["results"] if x.attempts > 1)
        runs[f"farm, 2 workers, one SIGKILLed after {n // 3} results (once)"] = [
            Round(r["batch"], r["steady"], nan, nan, f"{check(r['results'], answers)}, re-run {retried}")]
    rows = [_row(name, per, n) for name, per in runs.items()]
    return (f"**{label}, {n} jobs, {rounds} interleaved round{'s' if rounds > 1 else ''}** (batch: first "
            f"submission to last result; steady: from the first result to the last; medians over the rounds; each "
            f"round's speed-ups are against the mean of its two one-thread loops, run before and after its farm "
            f"and pool runs)\n\n" + "\n".join(table(
                ["run", "batch s", "steady ms/job", "jobs/min", "speed-up (batch)", "speed-up (steady)",
                 "steady range", "check"], rows)))


def main(argv=None) -> None:
    ap = parser(__doc__)
    ap.add_argument("--jobs", type=int, default=200, help="MNIST whole-network jobs")
    ap.add_argument("--timeout", type=float, default=10.0, help="solver seconds per job")
    ap.add_argument("--overhead-jobs", type=int, default=500, help="no-op jobs per worker count (scheduling overhead)")
    ap.add_argument("--overhead-workers", default="1,2,4,8,16,32", help="worker counts for the scheduling overhead")
    ap.add_argument("--noop", action="store_true", help="only the farm at scale: --jobs no-op jobs (see above)")
    ap.add_argument("--noop-workers", default="1,2,8,32", help="worker counts for --noop (at a tenth of --jobs)")
    ap.add_argument("--noop-large-workers", default="2", help="worker counts that also run all --jobs (--noop)")
    ap.add_argument("--noop-child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds of loop / farm / pool runs (MNIST)")
    ap.add_argument("--lite0-rounds", type=int, default=1, help="the same for the Lite0 jobs (about 20 min a round)")
    ap.add_argument("--lite0", type=int, default=0, help="EfficientNet-Lite0 first-layer jobs (0: none)")
    ap.add_argument("--data", type=Path, default=None, help="ImageNet photos for --lite0")
    ap.add_argument("--loop-only", choices=("mnist", "lite0"), default=None, help=argparse.SUPPRESS)
    add_doc_args(ap)
    a = ap.parse_args(argv)
    if a.rounds < 1 or a.lite0_rounds < 1:
        ap.error("--rounds and --lite0-rounds must be at least 1")
    if a.noop_child:  # one --noop run (noop_scale)
        print(json.dumps(noop_child(a.noop_child, int(a.noop_workers))))
        return
    load_before = uptime()
    if a.noop:
        body = f"Machine: {os.cpu_count()} cores; before: `{load_before}`\n\n{noop_scale(a)}\n\nAfter: `{uptime()}`"
        publish(a, "farm-noop", "Batch farm at scale: no-op jobs (issue 28)", invocation("farm"), body)
        return
    sections = []
    if a.loop_only:  # the one-thread loop's child process (loop_one_thread)
        requests = workload(a.loop_only, a)
        doc = loop(requests)
        print(json.dumps({**doc, "answers": {k: list(v) for k, v in doc["answers"].items()}}))
        return
    workloads = [("mnist", "MNIST whole-network", workload("mnist", a))]
    if a.lite0:
        workloads.append(("lite0", "Lite0 first-layer (k = 3000)", workload("lite0", a)))
    for key, label, requests in workloads:
        sections.append(throughput(key, label, requests, a, a.rounds if key == "mnist" else a.lite0_rounds))
    noop_rows = []
    for workers in [int(w) for w in a.overhead_workers.split(",")]:
        for flow, queue, chunks in FLOWS:
            wall, per_job = noop_overhead(a.overhead_jobs, workers, queue, chunks)
            noop_rows.append([workers, flow, a.overhead_jobs, f"{wall:.2f}", f"{a.overhead_jobs / wall:.0f}",
                              f"{per_job:.1f}"])
    sections.append(f"**Scheduling overhead**: {a.overhead_jobs} no-op jobs through the farm's submission loop "
                    f"(`smug.farm.dispatch`: the submitter keeping one job per worker thread in flight, or the "
                    f"scheduler's queue handing them out)\n\n" + "\n".join(
        table(["workers", "flow control", "jobs", "wall s", "jobs/s", "overhead per job x workers (ms)"], noop_rows)))
    idle_rows = []
    for quiet in (False, True):
        client, workers = idle_cpu(2, quiet)
        idle_rows.append(["the farm's (`smug.farm.cluster.QUIET`)" if quiet else "Dask's defaults",
                          f"{client:.1f}", f"{workers:.1f}", f"{client + workers:.1f}"])
    sections.append("**Idle housekeeping** of an embedded cluster with 2 workers, over 20 s (percent of one core)"
                    "\n\n" + "\n".join(table(["housekeeping", "client, scheduler and nannies", "2 workers",
                                                 "all"], idle_rows)))
    body = "\n\n".join([f"Machine: {os.cpu_count()} cores; before: `{load_before}`; after: `{uptime()}`", *sections])
    publish(a, "farm", TITLE, invocation("farm"), body)


if __name__ == "__main__":
    main()
