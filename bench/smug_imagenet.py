"""SMUG on EfficientNet-Lite0 over real ImageNet photos: per-stage times, status, mask size.

    python -m smug.bench.smug_imagenet --images 50        # writes docs/benchmarks.md

IG runs once per image; both constraint forms (bias-free ``linear``, the default, and
``affine``, Eq. 3 literally) are then encoded, solved and certified from the same
kept neurons.  Model loading (export, sessions, torch conversion) is paid once and
reported apart.  Times are wall-clock seconds on this machine, 1 torch thread.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from smug.bench.common import add_doc_args, add_photo_args, invocation, parser, photos, publish, table
from smug.encoders.blocks import BlockGrid
from smug.encoders.first_layer import find_first_layer
from smug.encoders.ig import auto_integrated_gradients, integrated_gradients
from smug.encoders.saliency import base_mask
from smug.encoders.smug import build_problem, select_top_k, target_probability
from smug.models.zoo import load_model
from smug.solver.solve import solve

TITLE = "SMUG on EfficientNet-Lite0, real ImageNet photos (issue 2)"


def q(values, p):
    return float(np.percentile(values, p)) if values else float("nan")


def run(data: Path, n_images: int, top_k: int, gamma: float, window: int, ig_steps: int | None,
        timeout: float) -> dict:
    t0 = time.perf_counter()
    model, entry = load_model("efficientnet-lite0")
    layer = find_first_layer(model)
    files = photos(data)
    files = files[:: max(1, len(files) // n_images)][:n_images]
    x0, _ = entry.preprocess.load(files[0])
    prob = target_probability(model, layer, x0, 0)  # warm-up: builds the torch tail once
    with __import__("torch").no_grad():
        prob(__import__("torch").zeros((1,) + tuple(layer.output_shape)))
    load_s = time.perf_counter() - t0
    grid = BlockGrid(model.input_shape, window)
    rows = []
    for i, f in enumerate(files):
        x, _ = entry.preprocess.load(f)
        t = time.perf_counter()
        logits = model.logits(x[None])[0]
        target = int(logits.argmax())
        act = model.tensors(x[None], [layer.activation_tensor])[layer.activation_tensor][0]
        prob = target_probability(model, layer, x, target)
        ig = auto_integrated_gradients(prob, act) if ig_steps is None else integrated_gradients(prob, act, steps=ig_steps)
        neurons = select_top_k(ig.attribution, top_k)
        t_ig = time.perf_counter() - t
        row = {"image": f.name, "target": target, "ig_s": t_ig, "ig_steps": ig.steps,
               "ig_error": ig.completeness_error, "base_blocks": int(base_mask(layer, neurons, grid).sum())}
        for form in ("linear", "affine"):
            t = time.perf_counter()
            problem, _ = build_problem(layer, x, neurons, grid, gamma, form)
            t_enc = time.perf_counter() - t
            sol = solve(problem, timeout=timeout)
            row[form] = {"encode_s": t_enc, "solve_s": sol.timings.get("total", 0.0) - sol.timings.get("certify", 0.0),
                         "certify_s": sol.timings.get("certify", 0.0), "status": sol.status,
                         "blocks": sol.objective, "lower_bound": sol.lower_bound,
                         "valid": bool(sol.certificate and sol.certificate.valid),
                         "constraints": problem.n_constraints, "components": sol.components}
            row[form]["end_to_end_s"] = t_ig + t_enc + sol.timings.get("total", 0.0)
        rows.append(row)
        print(f"[{i + 1}/{len(files)}] {f.name}: IG {t_ig:.1f}s ({ig.steps} steps, err {ig.completeness_error:.3f}), "
              f"linear {row['linear']['status']} {row['linear']['blocks']} blocks, "
              f"affine {row['affine']['status']} {row['affine']['blocks']}", flush=True)
    return {"load_s": load_s, "rows": rows, "n_blocks": grid.n_vars,
            "params": {"images": len(files), "top_k": top_k, "gamma": gamma, "window": window,
                       "ig_steps": ig_steps or "adaptive (tolerance 5%)", "timeout": timeout}}


def markdown(res: dict) -> str:
    """The section's body (after its title and command)."""
    rows, n = res["rows"], res["n_blocks"]
    ig = [r["ig_s"] for r in rows]
    err = [r["ig_error"] for r in rows]
    steps = [r["ig_steps"] for r in rows]
    out = [
        f"Machine: {platform.processor() or platform.machine()}, 2 cores, 1 torch thread; "
        f"one-time load (ONNX export cache, sessions, torch tail) {res['load_s']:.1f} s.  ",
        f"Parameters: {json.dumps(res['params'])}.",
        "",
        f"IG on the stem's ReLU6 output: median {statistics.median(ig):.2f} s "
        f"(quartiles {q(ig, 25):.2f}-{q(ig, 75):.2f}), median {statistics.median(steps):.0f} gradient steps, "
        f"completeness error median {statistics.median(err):.3f} (max {max(err):.3f}).",
        "",
    ]
    base = [r["base_blocks"] / n for r in rows]
    cells = []
    for form in ("linear", "affine"):
        f = [r[form] for r in rows]
        status = [x["status"] for x in f]
        blocks = [x["blocks"] for x in f if x["blocks"] is not None]
        med = lambda key: statistics.median([x[key] for x in f])  # noqa: E731
        cells.append([form, f"{med('end_to_end_s'):.2f}", f"{med('encode_s'):.3f}", f"{med('solve_s'):.3f}",
                      f"{med('certify_s'):.3f}", status.count("optimal"), status.count("feasible"),
                      len(status) - status.count("optimal") - status.count("feasible"),
                      f"{sum(x['valid'] for x in f)}/{len(f)}", f"{statistics.median(blocks):.0f}",
                      f"{statistics.median(blocks) / n:.1%}", f"{statistics.median(base):.1%}"])
    out += table(["form", "end to end median (s)", "encode", "solve", "certify", "optimal", "feasible", "other",
                  "certificate valid", f"blocks median (of {n})", "mask share median", "SMUG_base share median"],
                 cells)
    slowest = max(rows, key=lambda r: r["linear"]["solve_s"])
    out += ["", f"Slowest linear solve: {slowest['image']} {slowest['linear']['solve_s']:.2f} s "
            f"({slowest['linear']['constraints']} constraints, {slowest['linear']['components']} components)."]
    return "\n".join(out)


def main() -> None:
    ap = parser(__doc__)
    add_photo_args(ap, images=50)
    ap.add_argument("--top-k", type=int, default=3000)
    ap.add_argument("--gamma", type=float, default=0.0)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--ig-steps", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--json", default=None, help="also write the raw rows here")
    add_doc_args(ap)
    a = ap.parse_args()
    res = run(a.data, a.images, a.top_k, a.gamma, a.window, a.ig_steps, a.timeout)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    publish(a, "smug_imagenet", TITLE, invocation("smug_imagenet"), markdown(res))


if __name__ == "__main__":
    main()
