"""The farm on a real LocalCluster (2 process workers): results equal single runs, resume, faults."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from smug.farm import Store, job_of, read_manifest, run
from smug.farm.dispatch import EVENT_TOPIC
from smug.farm.engine import job_key
from smug.pipeline import ExplainRequest
from smug.pipeline import run as run_one

pytest.importorskip("distributed")

TEXT = "a gorgeous, funny film let down by a dull ending"


def _whole(x, **kw):
    return ExplainRequest.build(x, "mnist-mlp", method="whole-network", **{"timeout": 10, **kw})


def test_results_equal_single_runs(client, tmp_path, digits, tiny_onnx):
    x = np.random.default_rng(1).uniform(size=(1, 4, 4)).astype(np.float32)
    requests = [*(_whole(d) for d in digits[:4]),
                ExplainRequest.build(digits[0], "mnist-mlp", method="smug", top_k=5, window=1, timeout=10),
                ExplainRequest.build(model="text-cnn", text=TEXT, top_k=20, timeout=10),
                ExplainRequest.build(x, str(tiny_onnx), method="whole-network", timeout=10, name="tiny"),
                ExplainRequest.build(x, str(tiny_onnx), method="smug", top_k=4, window=1, timeout=10)]
    db = tmp_path / "r.sqlite"
    results = {r.job_id: r for r in run(requests, store=db, client=client)}
    assert len(results) == len(requests)
    with Store(db) as store:
        for req in requests:
            job = job_of(req)
            got, want = results[job.id], run_one(req)
            assert got.state == "done", got.reason
            assert (got.status, got.objective) == (want.status, want.objective)
            assert got.result["certificate"]["valid"] is True is want.certificate["valid"]
            assert got.result["model"] == want.model and got.result["input"] == want.input
            assert got.result["request"] == want.to_json()["request"]
            e = store.explanation(job.id)  # from the store, arrays included
            if want.text is None:
                assert np.array_equal(e.mask, want.mask) and np.array_equal(e.pixel_mask, want.pixel_mask)
                assert np.allclose(e.saliency, want.saliency)
            else:
                assert e.word_mask == want.word_mask
        assert store.counts() == {"pending": 0, "done": len(requests), "failed": 0, "total": len(requests)}
    assert list(run(requests, store=db, client=client)) == []  # a re-run skips everything


def _count(db, state="done") -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM jobs WHERE state=?", (state,)).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_killed_client_resumes_without_duplicates_or_losses(client, tmp_path, digit_pngs):
    """`smug farm run` SIGKILLed after two results; the re-run finishes the rest, each job once."""
    pngs = digit_pngs
    manifest = tmp_path / "jobs.jsonl"
    lines = [{"input": p.name, "model": "mnist-mlp", "method": "whole-network", "timeout": 10, "name": p.stem}
             for p in pngs]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    db = tmp_path / "r.sqlite"
    code = ("import sys; from smug.farm.commands import add_commands, run_command; import argparse; "
            "p = argparse.ArgumentParser(); add_commands(p.add_subparsers(dest='command')); "
            "sys.exit(run_command(p.parse_args(sys.argv[1:])))")
    proc = subprocess.Popen([sys.executable, "-c", code, "farm", "run", str(manifest), "--db", str(db),
                             "--scheduler", client.scheduler.address, "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while _count(db) < 2 and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _count(db)
    assert 2 <= before < len(pngs), "the client should die mid-batch"
    jobs = read_manifest(manifest).jobs
    rest = list(run(jobs, store=db, client=client))
    assert len(rest) == len(pngs) - before and all(r.state == "done" for r in rest)
    with Store(db) as store:
        assert store.counts() == {"pending": 0, "done": len(pngs), "failed": 0, "total": len(pngs)}
        assert sorted(store.ids()) == sorted(j.id for j in jobs)
        assert [r["name"] for r in store.rows()] == [p.stem for p in pngs]


def test_worker_killed_mid_batch_every_job_ends_once(client, tmp_path, digits):
    slow = [_whole(d, delta=2.0, timeout=3) for d in digits[:2]]  # ~3 s each (stopped at their timeout)
    quick = [_whole(d) for d in digits[2:]]
    requests = slow + quick
    db = tmp_path / "r.sqlite"
    slow_ids = {job_key(job_of(q).id) for q in slow}
    killed: list[int] = []

    def kill_a_worker_running_a_slow_job() -> None:
        """Each Dask task announces its start (its jobs' keys, the worker's pid) on the farm's event
        topic: kill the worker of the first slow job that has started, while it runs (a slow job
        takes >= 3 s)."""
        end = time.time() + 120
        while time.time() < end:
            started = [msg for _, msg in client.get_events(EVENT_TOPIC) if slow_ids & set(msg.get("jobs", ()))]
            if started:
                time.sleep(0.5)
                os.kill(started[0]["pid"], signal.SIGKILL)
                killed.append(started[0]["pid"])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker_running_a_slow_job, daemon=True)
    killer.start()
    seen = list(run(requests, store=db, client=client))
    killer.join(timeout=5)
    assert killed, "no worker was seen running a slow job"
    assert sorted(r.job_id for r in seen) == sorted(job_of(q).id for q in requests)  # each exactly once
    assert all(r.state == "done" for r in seen), [r.reason for r in seen]
    assert any(r.attempts == 2 for r in seen), [(r.job_id[:8], r.attempts, r.worker) for r in seen]  # ran again
    with Store(db) as store:
        assert store.counts()["done"] == len(requests) == store.counts()["total"]
    assert killed[0] not in client.run(os.getpid).values()  # the nanny restarted it


def test_poison_job_fails_and_the_batch_completes(client, tmp_path, digits, bomb_onnx):
    x = np.ones((1, 4, 4), np.float32)
    poison = ExplainRequest.build(x, str(bomb_onnx), method="gradient", name="poison")
    requests = [_whole(d) for d in digits[:3]] + [poison]
    db = tmp_path / "r.sqlite"
    results = {r.name or r.job_id: r for r in run(requests, store=db, client=client, retries=1)}
    assert results["poison"].state == "failed" and "killed its worker 2 times" in results["poison"].reason
    assert results["poison"].attempts == 2
    assert sum(r.state == "done" for r in results.values()) == 3
    with Store(db) as store:
        assert [f["name"] for f in store.failures()] == ["poison"]
        assert store.counts() == {"pending": 0, "done": 3, "failed": 1, "total": 4}



def _listening() -> list[str]:
    """The (ip, port) of TCP sockets in LISTEN state held by this process and every process below it."""
    import psutil

    found = []
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            found += [(c.laddr.ip, c.laddr.port) for c in proc.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    return found


def _loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4 loopback address written as IPv6 (::ffff:127.0.0.1)."""
    import ipaddress

    addr = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


def test_an_embedded_cluster_listens_on_loopback_only_and_serves_no_dashboard():
    from smug.farm import cluster

    import urllib.error
    import urllib.request

    with cluster.connect(workers=1) as c:
        assert c.submit(sum, [1, 2], pure=False).result(timeout=60) == 3  # the worker is up and serving
        listening = _listening()
        assert len(listening) >= 3  # the scheduler, a nanny, a worker at least
        assert all(_loopback(ip) for ip, _ in listening), listening
        assert cluster.dashboard(c) is None
        info = c.scheduler_info()
        http = [info["services"]["dashboard"], *(w["services"]["dashboard"] for w in info["workers"].values())]
        assert set(http) <= {port for _, port in listening}
        for port in http:  # the HTTP servers Dask starts anyway (the scheduler's, each worker's) answer no page
            for page in ("/metrics", "/health", "/info/main/workers.html", "/json/identity.json", "/status", "/"):
                with pytest.raises(urllib.error.HTTPError) as err:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{page}", timeout=5)
                assert err.value.code == 404, (port, page)
