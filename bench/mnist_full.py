"""Whole-network minimal masks on the MNIST MLP (paper 003 Appendix A, Table 2).

    python -m smug.bench.mnist_full --images 100        # writes docs/benchmarks.md

100 held-out test digits (the fixed-seed split of :func:`smug.bench.datasets.mnist_split`,
first 100), pixel masks and 4x4 block masks, masked-out value 0, delta 0: per image and
backend the status, time and mask size, then a per-digit table in the form of
paper 003 Table 2.  Every mask is certified exactly and re-run through
onnxruntime.  Backends run one after another in this process (z3 at pixel level on
the first ``--z3-images`` digits only: it is the slow one), then the portfolio.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

import numpy as np

from smug.bench.common import add_doc_args, invocation, parser, publish, table
from smug.bench.datasets import mnist_split
from smug.encoders.network import encode_network
from smug.models.zoo import load_model
from smug.pipeline.isolation import solve_isolated
from smug.solver.backends import backends
from smug.solver.network_solve import solve_network

NETWORK_BACKENDS = backends("whole-network")  # auto, highs, enum, z3, portfolio

TITLE = "Whole-network MNIST masks (issue 3)"


def run(n: int, timeout: float, z3_images: int) -> dict:
    model, _ = load_model("mnist-mlp")
    _, _, x_test, y_test = mnist_split()
    rows = []
    for i in range(n):
        x = x_test[i]
        row = {"index": i, "label": int(y_test[i]), "pred": int(model.logits(x[None])[0].argmax())}
        for window in (1, 4):
            p = encode_network(model, x, window=window)
            for backend in NETWORK_BACKENDS:
                if backend == "z3" and window == 1 and i >= z3_images:
                    continue
                t = time.perf_counter()
                if backend == "portfolio":
                    sol = solve_isolated(p, "portfolio", timeout)
                else:
                    sol = solve_network(p, backend, timeout)
                dt = time.perf_counter() - t
                keeps = None
                if sol.mask is not None:
                    masked = p.masked_input(sol.mask).reshape(model.input_shape).astype(np.float32)
                    keeps = int(model.logits(masked[None])[0].argmax()) == p.target
                row[f"{backend}/{window}"] = {"status": sol.status, "s": dt, "size": sol.objective,
                                              "lb": sol.lower_bound, "valid": bool(sol.certificate and sol.certificate.valid),
                                              "onnx_keeps": keeps}
        rows.append(row)
        print(i, row["label"], {k: (v["status"], v["size"], round(v["s"], 2)) for k, v in row.items()
                               if isinstance(v, dict)}, flush=True)
    return {"rows": rows, "timeout": timeout, "z3_images": z3_images}


def markdown(res: dict) -> str:
    """The section's body (after its title and command)."""
    rows = res["rows"]
    out = [f"{len(rows)} held-out digits, 784-32-10 ReLU MLP, masked-out value 0 (black), delta 0, "
           f"timeout {res['timeout']:.0f} s per solve, one process, backends run one after another "
           f"(z3 at pixel level on the first {res['z3_images']} digits only). Every mask certified exactly; "
           "'onnx' counts masked inputs that onnxruntime still assigns the predicted class.", ""]
    lines = []
    for window in (1, 4):
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
                          sum(c["valid"] for c in cells), sum(bool(c["onnx_keeps"]) for c in cells)])
    out += table(["granularity", "backend", "images", "optimal", "median s", "p95 s", "max s",
                  "mask size median (max)", "certified", "onnx keeps class"], lines)
    by_digit = defaultdict(list)
    for r in rows:
        by_digit[r["label"]].append(r["auto/1"])
    digits = sorted(by_digit)
    groups = [by_digit[d] for d in digits] + [[r["auto/1"] for r in rows]]
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
    add_doc_args(ap)
    a = ap.parse_args()
    res = run(a.images, a.timeout, a.z3_images)
    publish(a, "mnist_full", TITLE, invocation("mnist_full"), markdown(res))


if __name__ == "__main__":
    main()
