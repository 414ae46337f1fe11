"""Whole-network minimal masks on the MNIST MLP and CNN (paper 003 Appendix A, Table 2).

    python -m smug.bench.mnist_full --images 100                     # the MLP (issue 3)
    python -m smug.bench.mnist_full --model mnist-cnn --images 100   # the CNN (issue 17)

100 held-out test digits (the fixed-seed split of :func:`smug.bench.datasets.mnist_split`,
first 100), pixel masks and 4x4 block masks, masked-out value 0, delta 0: per image and
backend the status, time and mask size, then a per-digit table in the form of
paper 003 Table 2.  Every mask is certified exactly and re-run through
onnxruntime.  Each backend runs in its own forked process, one after another (z3 and
the pixel level on the first ``--z3-images`` / ``--pixel-images`` digits only), so its
peak resident memory is measured; the portfolio starts its own children.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from collections import defaultdict

import numpy as np

from smug.bench.common import add_doc_args, invocation, parser, publish, table, uptime
from smug.bench.datasets import mnist_split
from smug.encoders.network import encode_network
from smug.models.zoo import load_model
from smug.isolation.runner import solve_isolated
from smug.solver.backends import backends
from smug.solver.network_solve import solve_network

NETWORK_BACKENDS = backends("whole-network")  # auto, highs, enum, z3, portfolio

TITLES = {"mnist-mlp": "Whole-network MNIST masks (issue 3)", "mnist-cnn": "Whole-network MNIST CNN masks (issue 17)"}
KEYS = {"mnist-mlp": "mnist_full", "mnist-cnn": "mnist_full_cnn"}
ARCHITECTURES = {"mnist-mlp": "784-32-10 ReLU MLP",
                 "mnist-cnn": "CNN Conv5x5(4)-BN-ReLU-MaxPool2-Conv3x3s2(8)-ReLU-Gemm (5,960 ReLUs once lowered)"}


def _solve_all(model_name: str, window: int, backend: str, images: list[int], timeout: float, out) -> None:
    """One backend on ``images`` (run in a forked child): per image the cell, then the peak RSS."""
    model, _ = load_model(model_name)
    _, _, x_test, _ = mnist_split()
    for i in images:
        p = encode_network(model, x_test[i], window=window)
        t = time.perf_counter()
        sol = solve_isolated(p, "portfolio", timeout) if backend == "portfolio" else solve_network(p, backend, timeout)
        dt = time.perf_counter() - t
        keeps = None
        if sol.mask is not None:
            masked = p.masked_input(sol.mask).reshape(model.input_shape).astype(np.float32)
            keeps = int(model.logits(masked[None])[0].argmax()) == p.target
        out.put((i, {"status": sol.status, "s": dt, "size": sol.objective, "lb": sol.lower_bound,
                     "valid": bool(sol.certificate and sol.certificate.valid), "onnx_keeps": keeps,
                     "unstable": [sol.stats.get("unstable_relus_interval"), sol.stats.get("unstable_relus")]}))
    out.put(("peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def run(n: int, timeout: float, z3_images: int, model_name: str = "mnist-mlp", pixel_images: int | None = None,
        backends: tuple[str, ...] = NETWORK_BACKENDS, windows: tuple[int, ...] = (1, 4),
        pixel_backends: tuple[str, ...] | None = None, slow_images: int | None = None) -> dict:
    model, _ = load_model(model_name)
    _, _, x_test, y_test = mnist_split()
    rows = [{"index": i, "label": int(y_test[i]), "pred": int(model.logits(x_test[i][None])[0].argmax())}
            for i in range(n)]
    peaks = {}
    ctx = mp.get_context("fork")
    for window in windows:
        for backend in (pixel_backends or backends) if window == 1 else backends:
            count = n
            if window == 1 and pixel_images is not None:
                count = min(count, pixel_images)
            if backend == "z3":
                count = min(count, z3_images) if window == 1 or model_name != "mnist-mlp" else count
            if slow_images is not None and backend in ("highs", "z3", "portfolio"):
                count = min(count, slow_images)
            out = ctx.Queue()
            child = ctx.Process(target=_solve_all, args=(model_name, window, backend, list(range(count)), timeout, out))
            child.start()
            for _ in range(count + 1):
                key, cell = out.get()
                if key == "peak":
                    peaks[f"{backend}/{window}"] = cell
                    continue
                rows[key][f"{backend}/{window}"] = cell
                print(window, backend, key, rows[key]["label"], (cell["status"], cell["size"], round(cell["s"], 2)),
                      flush=True)
            child.join()
    return {"rows": rows, "timeout": timeout, "z3_images": z3_images, "pixel_images": pixel_images,
            "model": model_name, "peaks": peaks, "slow_images": slow_images, "backends": backends, "windows": windows, "load": uptime()}


def markdown(res: dict) -> str:
    """The section's body (after its title and command)."""
    rows = res["rows"]
    model = res.get("model", "mnist-mlp")
    out = [f"{len(rows)} held-out digits, {ARCHITECTURES[model]}, masked-out value 0 (black), delta 0, "
           f"timeout {res['timeout']:.0f} s per solve, backends run one after another, each in its own process "
           f"(z3 on the first {res['z3_images']} digits"
           + (f", pixels on the first {res['pixel_images']}" if res.get("pixel_images") is not None else "")
           + (f", highs/z3/portfolio on the first {res['slow_images']}" if res.get("slow_images") is not None else "")
           + "). Every mask certified exactly; 'onnx' counts masked inputs that onnxruntime still assigns the "
           f"predicted class; peak = the backend process's peak resident memory. Load at the end: {res.get('load', '-')}.",
           ""]
    lines = []
    for window in res.get("windows", (1, 4)):
        for backend in NETWORK_BACKENDS:
            cells = [r[f"{backend}/{window}"] for r in rows if f"{backend}/{window}" in r]
            if not cells:
                continue
            secs = [c["s"] for c in cells]
            sizes = [c["size"] for c in cells if c["size"] is not None]
            lines.append(["pixels" if window == 1 else "4x4 blocks", backend, len(cells),
                          sum(c["status"] == "optimal" for c in cells), f"{statistics.median(secs):.3f}",
                          f"{np.percentile(secs, 95):.3f}", f"{max(secs):.2f}",
                          f"{statistics.median(sizes) if sizes else '-'} ({max(sizes) if sizes else '-'})",
                          sum(c["valid"] for c in cells), sum(bool(c["onnx_keeps"]) for c in cells),
                          f"{res.get('peaks', {}).get(f'{backend}/{window}', float('nan')):.0f}"])
    out += table(["granularity", "backend", "images", "optimal", "median s", "p95 s", "max s",
                  "mask size median (max)", "certified", "onnx keeps class", "peak MB"], lines)
    unstable = [r[k]["unstable"] for r in rows for k in ("auto/4", "auto/1") if k in r and r[k].get("unstable", [None])[0]]
    if unstable:
        before, after = (statistics.median(u[i] for u in unstable) for i in (0, 1))
        out += ["", f"Unstable ReLUs (median over the `auto` solves): {before:.0f} with interval bounds, "
                f"{after:.0f} after CROWN back-substitution and the exact signs of units no mask reaches."]
    by_digit = defaultdict(list)
    for r in rows:
        if "auto/1" in r:
            by_digit[r["label"]].append(r["auto/1"])
    if not by_digit:
        return "\n".join(out)
    digits = sorted(by_digit)
    groups = [by_digit[d] for d in digits] + [[r["auto/1"] for r in rows if "auto/1" in r]]
    out += ["", "Per digit, pixel masks, `auto` backend (the form of paper 003 Table 2, where z3 solved 34/100 "
            "within 60 min, mean 35.6 min):", ""]
    out += table(["digit", *digits, "ALL"], [
        ["mean time (s)", *(f"{np.mean([c['s'] for c in g]):.2f}" for g in groups)],
        ["proven optimal", *(f"{sum(c['status'] == 'optimal' for c in g)}/{len(g)}" for g in groups)],
        ["mean mask size", *(f"{np.mean([c['size'] for c in g]):.2f}" for g in groups)]])
    return "\n".join(out)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--z3-images", type=int, default=20)
    ap.add_argument("--model", choices=sorted(TITLES), default="mnist-mlp")
    ap.add_argument("--pixel-images", type=int, default=None, help="pixel masks on the first N digits only")
    ap.add_argument("--backends", nargs="+", choices=NETWORK_BACKENDS, default=list(NETWORK_BACKENDS))
    ap.add_argument("--pixel-backends", nargs="+", choices=NETWORK_BACKENDS, default=None,
                    help="backends at pixel level (default: --backends)")
    ap.add_argument("--slow-images", type=int, default=None, help="highs, z3 and portfolio on the first N digits only")
    ap.add_argument("--windows", nargs="+", type=int, choices=(1, 4), default=[1, 4])
    add_doc_args(ap)
    a = ap.parse_args()
    res = run(a.images, a.timeout, a.z3_images, a.model, a.pixel_images, tuple(a.backends), tuple(a.windows),
              tuple(a.pixel_backends) if a.pixel_backends else None, a.slow_images)
    publish(a, KEYS[a.model], TITLES[a.model], invocation("mnist_full"), markdown(res))


if __name__ == "__main__":
    main()
