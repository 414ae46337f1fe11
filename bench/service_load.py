"""Load on the gRPC service (issues 4, 18): latency, throughput, errors, server memory, CPU.

    python -m smug.bench.service_load                       # writes docs/benchmarks.md
    python -m smug.bench.service_load --mnist-requests 5 --lite0-requests 1 --no-write   # quick look

A server runs as a separate process (``python -m smug.server --port 0``, one worker
per core).  For each workload (MNIST MLP whole-network masks on the demo digit sent as a
tensor; EfficientNet-Lite0 first-layer masks on the demo photo sent as JPEG bytes) and
each level of 1, 4, 8, 16 concurrent clients (one channel each), every client sends N
requests back to back.  Measured: p50/p95/p99 latency, throughput, errors, peak resident
memory of the server process tree, CPU busy share of the machine and the cores used by
the server's processes.  First the same request is timed in rounds of two, one after
the other: through the library (:func:`smug.pipeline.explain`, what a worker runs too)
and through the service at one client; overhead = service p50 / in-process p50 - 1.
Every answer's certificate must be valid and its mask as small as the in-process one; a
whole-network mask is re-checked in onnxruntime (the masked input keeps the decision).  Raw results go to ``--json`` (default ``smug-out/bench/service_load.json``,
written per workload, so an interrupted run resumes with ``--resume``) and the table to
docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from smug.bench.common import ROOT, add_doc_args, invocation, parser, publish, table, uptime
from smug.common import proc_status_bytes

TITLE = "gRPC service under load (issue 4)"
RESULTS = ROOT / "smug-out" / "bench" / "service_load.json"  # git-ignored


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its descendants (MB)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += proc_status_bytes("VmRSS", p) / 2**20
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def _machine_busy() -> tuple[float, float]:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def workloads(lite0_n: int, mnist_n: int) -> list[dict]:
    from smug.models.zoo import ZOO

    mnist = ZOO["mnist-mlp"]
    digit = mnist.preprocess.load(mnist.demo_input)[0]  # sent as a model-space tensor
    photo = ZOO["efficientnet-lite0"].demo_input
    return [
        {"name": "mnist-mlp whole network", "n": mnist_n, "model": "mnist-mlp", "source": digit, "whole": True,
         "local_source": digit, "remote": dict(method="whole-network", window=1, timeout=60.0)},
        {"name": "efficientnet-lite0 first layer", "n": lite0_n, "model": "efficientnet-lite0",
         "source": photo.read_bytes(), "local_source": str(photo), "remote": dict(top_k=3000, window=4, timeout=60.0)},
    ]


def _ort_check(w: dict):
    """For whole-network masks: a check, in onnxruntime, that the masked input keeps the decision
    (blocks outside the mask set to 0, the encoding's baseline); other workloads: always True."""
    if not w.get("whole"):
        return lambda e: True
    from smug.models.zoo import load_model

    model, _ = load_model(w["model"])
    x = np.asarray(w["source"], np.float32)

    def check(e) -> bool:
        masked = np.where(e.pixel_mask[None], x, 0.0).astype(np.float32)
        return int(model.logits(masked[None])[0].argmax()) == e.target

    return check


def _local(w: dict):
    """The workload's request through the library, in this process."""
    from smug.pipeline import explain

    return explain(w["local_source"], w["model"], **w["remote"])


def in_process(w: dict, n: int, address: str) -> dict:
    """The same request in-process (the library) and through the service at one client,
    interleaved (api, service, api, ...) so that load drift on a shared machine hits both alike."""
    from smug.clients import Client

    _local(w)  # warm: model load, torch conversion
    lat: dict[str, list[float]] = {"api": [], "service": []}
    with Client(address) as c:
        c.explain(w["source"], w["model"], **w["remote"])
        for _ in range(n):
            for label, call in (("api", lambda: _local(w)),
                                ("service", lambda: c.explain(w["source"], w["model"], **w["remote"]))):
                t = time.perf_counter()
                e = call()
                lat[label].append(time.perf_counter() - t)
                if label == "api":
                    mask, objective = np.argwhere(e.mask).tolist(), e.objective
    out = {k: {"p50": statistics.median(v), "mean": statistics.fmean(v), "n": n, "all": v} for k, v in lat.items()}
    out["ratio_p50"] = statistics.median(s / a for s, a in zip(lat["service"], lat["api"]))
    out["mask"], out["objective"] = mask, objective
    return out


def start_server(workers: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "SMUG_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "smug.server", "--port", "0", "--workers", str(workers),
                             "--max-queue", "8"], stderr=subprocess.PIPE, text=True, env=env)
    first = json.loads(proc.stderr.readline())
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # drain the log
    return proc, first["address"]


def level(address: str, server_pid: int, w: dict, clients: int, expected: dict | None) -> dict:
    from smug.clients import Client

    lat: list[float] = []
    errors: list[str] = []
    wrong = same = ort_bad = 0
    recheck = _ort_check(w)
    lock = threading.Lock()
    peak = [0.0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss_mb(server_pid))
            time.sleep(0.1)

    def one_client():
        nonlocal wrong, same, ort_bad
        with Client(address) as c:
            for _ in range(w["n"]):
                t = time.perf_counter()
                try:
                    e = c.explain(w["source"], w["model"], **w["remote"])
                    ok = e.certificate.get("valid") and (expected is None or e.objective == expected["objective"])
                    kept = recheck(e)
                    with lock:
                        ort_bad += not kept
                        lat.append(time.perf_counter() - t)
                        wrong += not ok
                        same += expected is not None and np.argwhere(e.mask).tolist() == expected["mask"]
                except Exception as exc:  # counted, not fatal
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    busy0, total0 = _machine_busy()
    cpu0 = _tree_cpu_s(server_pid)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=one_client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    busy1, total1 = _machine_busy()
    cpu1 = _tree_cpu_s(server_pid)
    stop.set()
    sampler.join()
    lat.sort()
    return {"clients": clients, "requests": clients * w["n"], "ok": len(lat), "errors": len(errors),
            "error_examples": errors[:3], "wrong_masks": wrong, "same_mask": same,
            "p50": statistics.median(lat) if lat else None,
            "p95": lat[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))] if lat else None,
            "p99": lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))] if lat else None,
            "ort_checked": len(lat) if w.get("whole") else 0, "ort_failed": ort_bad,
            "throughput": len(lat) / wall, "wall": wall, "server_rss_mb": peak[0],
            "machine_busy": (busy1 - busy0) / max(1, total1 - total0), "server_cores": (cpu1 - cpu0) / wall}


def markdown(results: dict) -> str:
    """The section's body (after its title and command)."""
    lines = [f"Server: `python -m smug.server --workers {results['workers']}` "
             f"(one process per core, separate from the clients); {results['cores']} cores (the load averages below say what else was running).",
             f"Load before: `{results['uptime_before']}`; after: `{results['uptime_after']}`.", "",
             "Each client (its own channel) sends N requests back to back. In-process: the same call "
             "in the bench process — `api` is the library call `smug.pipeline.explain` (its solve in an isolated "
             "child process, as in a worker) — interleaved with the service call at "
             "one client; overhead = service p50 / in-process p50 − 1. `busy` is the whole machine's CPU share (all cores, other jobs included); "
             "`server cores` the CPU seconds of the server's processes per second (the server and its workers; the "
             "short-lived solver children are not counted, so solve-bound work such as the MNIST whole-network masks "
             "shows almost none). Every answer was checked: "
             "certificate valid and mask size equal to the in-process optimum (else counted in `wrong`); "
             "`same` counts masks identical to the in-process one (optima can tie); whole-network masks are "
             "re-checked in onnxruntime (the masked input keeps the decision). `errors` beyond "
             "workers + queue (10) concurrent clients are the admission control's RESOURCE_EXHAUSTED.", ""]
    for name, r in results["workloads"].items():
        ip = r["in_process"]
        lines += [f"**{name}** (N = {r['n']} per client)", "",
                  f"Interleaved rounds ({ip['api']['n']}: api, service, ...): p50 api "
                  f"{ip['api']['p50']:.3f} s, service {ip['service']['p50']:.3f} s "
                  f"→ overhead {100 * (ip['service']['p50'] / ip['api']['p50'] - 1):+.1f}% vs the API call "
                  f"(median per-round ratio service/api {ip['ratio_p50']:.3f}).", ""]
        lines += table(["clients", "requests", "p50 s", "p95 s", "p99 s", "req/s", "errors", "wrong", "same",
                        "ORT re-checked / failed", "server+workers RSS MB", "busy", "server cores"],
                       [[L["clients"], L["requests"], f"{L['p50']:.3f}", f"{L['p95']:.3f}",
                         f"{L['p99']:.3f}" if L.get("p99") is not None else "-", f"{L['throughput']:.2f}",
                         L["errors"], L["wrong_masks"], L["same_mask"],
                         f"{L.get('ort_checked', '-')} / {L.get('ort_failed', '-')}", f"{L['server_rss_mb']:.0f}",
                         f"{100 * L['machine_busy']:.0f}%", f"{L['server_cores']:.2f}"] for L in r["levels"]])
        top = max(r["levels"], key=lambda L: L["server_cores"])
        lines += ["", f"Peak server CPU: {top['server_cores']:.2f} cores at {top['clients']} clients while the "
                      f"machine was {100 * top['machine_busy']:.0f}% busy"
                      + (" — other jobs held the rest of the cores, so throughput could not scale with clients "
                         "in this run." if top["server_cores"] < 0.8 * results["cores"] else "."), ""]
    return "\n".join(lines)


def main() -> None:
    ap = parser(__doc__, first_line=True)
    ap.add_argument("--mnist-requests", type=int, default=20, help="requests per client, MNIST")
    ap.add_argument("--lite0-requests", type=int, default=2, help="requests per client, Lite0 (~3 s each)")
    ap.add_argument("--levels", default="1,4,8,16")
    ap.add_argument("--pairs", type=int, default=0,
                    help="interleaved in-process / service rounds for the overhead (default: min(N, 10), >= 3)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--json", type=Path, default=RESULTS, help="raw results (default: %(default)s)")
    ap.add_argument("--resume", action="store_true", help="keep workloads already in the --json file")
    add_doc_args(ap)
    a = ap.parse_args()
    os.environ.setdefault("SMUG_TORCH_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    out = a.json
    results = json.loads(out.read_text()) if a.resume and out.exists() else {"workloads": {}}
    results.update(workers=a.workers, cores=os.cpu_count(), uptime_before=results.get("uptime_before", uptime()))
    levels = [int(v) for v in a.levels.split(",")]
    proc, address = start_server(a.workers)
    try:
        for w in workloads(a.lite0_requests, a.mnist_requests):
            if w["name"] in results["workloads"] or w["n"] == 0:
                continue
            warm = level(address, proc.pid, {**w, "n": 1}, a.workers, None)  # every worker loads the model
            print(w["name"], "warm-up", warm["errors"], warm["error_examples"], flush=True)
            ip = in_process(w, a.pairs or max(3, min(w["n"], 10)), address)
            print(" in-process", {k: v for k, v in ip.items() if k != "mask"}, flush=True)
            rows = []
            for c in levels:
                rows.append(level(address, proc.pid, w, c, ip))
                print(" ", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
            results["workloads"][w["name"]] = {"n": w["n"], "in_process": ip, "levels": rows}
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    results["uptime_after"] = uptime()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    publish(a, "service-load", TITLE, invocation("service_load"), markdown(results))


if __name__ == "__main__":
    main()
