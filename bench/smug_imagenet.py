"""SMUG on EfficientNet-Lite0 over real ImageNet photos: per-stage times, status, mask size.

    python -m smug.bench.smug_imagenet --images 50        # writes docs/benchmarks.md
    python -m smug.bench.smug_imagenet --ig-quality 4     # IG rules against a 512-step reference

    # side by side with an older checkout (a worktree linked as PREV/smug, PREV a scratch folder):
    python -m smug.bench.smug_imagenet --images 20 --json out/new.json --no-doc
    PYTHONPATH=PREV python -m smug.bench.smug_imagenet --images 20 --json out/old.json --no-doc
    python -m smug.bench.smug_imagenet --compare out/old.json out/new.json   # the ratios section

IG runs once per image; both constraint forms (bias-free ``linear``, the default, and
``affine``, Eq. 3 literally) are then encoded, solved and certified from the same
kept neurons.  Model loading (export, sessions, torch conversion) is paid once and
reported apart.  Times are wall-clock seconds on this machine, 1 torch thread.

``--ig-quality K``: on K photos, IG by several rules and step counts (and captum's
``IntegratedGradients``, 50 steps, when captum is installed) against a 512-step midpoint
reference: seconds, top-3000 overlap (the kept neurons, positive attributions), the
completeness error and the L1 distance to the reference.
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from smug.bench.common import add_doc_args, add_photo_args, invocation, parser, photos, publish, table, uptime
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
    return {"load_s": load_s, "rows": rows, "n_blocks": grid.n_vars, "load": uptime(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
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


IG_RULES = [("uniform", 16), ("uniform", 32), ("uniform", 64), ("uniform", 128), ("gauss-legendre", 32),
            ("adaptive", 32)]


def _captum_ig(prob, act: np.ndarray, steps: int = 50):
    """captum's IntegratedGradients (its default Gauss-Legendre rule) on the same function, or None."""
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        return None
    import torch

    a = torch.as_tensor(act[None])
    t = time.perf_counter()
    attr, delta = IntegratedGradients(prob).attribute(a, baselines=torch.zeros_like(a), n_steps=steps,
                                                       internal_batch_size=10, return_convergence_delta=True)
    return attr[0].double().numpy(), float(abs(delta.item())), time.perf_counter() - t


def ig_quality(data: Path, n_images: int, top_k: int) -> dict:
    """IG rules against a 512-step midpoint reference on ``n_images`` photos (see the docstring)."""
    model, entry = load_model("efficientnet-lite0")
    layer = find_first_layer(model)
    files = photos(data)
    files = files[:: max(1, len(files) // n_images)][:n_images]
    rows = []
    for f in files:
        x, _ = entry.preprocess.load(f)
        target = int(model.logits(x[None])[0].argmax())
        act = model.tensors(x[None], [layer.activation_tensor])[layer.activation_tensor][0]
        prob = target_probability(model, layer, x, target)
        ref = integrated_gradients(prob, act, steps=512, schedule="uniform")
        top = set(select_top_k(ref.attribution, top_k).tolist())
        norm = np.abs(ref.attribution).sum()

        def score(attr, seconds, err, steps):
            kept = set(select_top_k(attr, top_k).tolist())
            return {"s": seconds, "steps": steps, "overlap": len(top & kept) / max(1, len(top)), "error": err,
                    "l1": float(np.abs(attr - ref.attribution).sum() / norm)}

        row = {"image": f.name, "reference_error": ref.completeness_error, "reference_s": ref.seconds}
        for rule, steps in IG_RULES:
            r = integrated_gradients(prob, act, steps=steps, schedule=rule)
            row[f"{rule} {steps}"] = score(r.attribution, r.seconds, r.completeness_error, r.steps)
        auto = auto_integrated_gradients(prob, act)
        row["default (auto)"] = score(auto.attribution, auto.seconds, auto.completeness_error, auto.steps)
        old = auto_integrated_gradients(prob, act, schedule="adaptive")
        row["previous default (adaptive auto)"] = score(old.attribution, old.seconds, old.completeness_error,
                                                        old.steps + 17)
        cap = _captum_ig(prob, act)
        if cap is not None:
            gap = ref.f_input - ref.f_baseline
            row["captum IG 50 (Gauss-Legendre)"] = score(cap[0], cap[2], cap[1] / abs(gap), 50)
        rows.append(row)
        print(f"{f.name}: " + ", ".join(f"{k} {v['overlap']:.3f}" for k, v in row.items() if isinstance(v, dict)),
              flush=True)
    return {"rows": rows, "top_k": top_k, "load": uptime()}


def ig_markdown(res: dict) -> str:
    rows = res["rows"]
    names = [k for k, v in rows[0].items() if isinstance(v, dict)]
    cells = []
    for k in names:
        v = [r[k] for r in rows]
        med = lambda key: statistics.median([x[key] for x in v])  # noqa: E731
        cells.append([k, f"{med('steps'):.0f}", f"{med('s'):.2f}", f"{med('overlap'):.1%}",
                      f"{min(x['overlap'] for x in v):.1%}", f"{med('error'):.3f}", f"{med('l1'):.3f}"])
    return "\n".join([
        f"{len(rows)} photos ({', '.join(r['image'] for r in rows)}); reference: 512 midpoint steps "
        f"(completeness error median {statistics.median(r['reference_error'] for r in rows):.4f}). "
        f"Top-{res['top_k']} overlap = share of the reference's kept neurons also kept. Machine load at the end: "
        f"{res['load']}. Steps are gradient passes (the previous default also paid a 17-point forward sweep, "
        "counted here as steps).", "",
        *table(["rule", "gradient steps (median)", "seconds (median)", "top-3000 overlap (median)",
                "overlap (worst)", "completeness error (median)", "L1 to reference (median)"], cells)])


def compare_markdown(old: dict, new: dict) -> str:
    """Side by side: the same photos by the previous commit's code and by this one."""
    def med(res, f):
        return statistics.median([f(r) for r in res["rows"]])

    def e2e(r):
        return r["linear"]["end_to_end_s"]

    cells = []
    for name, f in [("end to end (linear)", e2e), ("IG", lambda r: r["ig_s"]),
                    ("IG steps", lambda r: r["ig_steps"]), ("solve (linear)", lambda r: r["linear"]["solve_s"]),
                    ("certify (linear)", lambda r: r["linear"]["certify_s"])]:
        a, b = med(old, f), med(new, f)
        cells.append([name, f"{a:.3f}", f"{b:.3f}", f"{b / a:.2f}" if a else "-"])
    same = sum(r["linear"]["status"] == "optimal" and r["linear"]["valid"] for r in new["rows"])
    return "\n".join([
        f"{len(new['rows'])} photos, medians; previous code: load {old.get('load', '?')}, peak RSS "
        f"{old.get('peak_rss_mb', float('nan')):.0f} MB; this code: load {new.get('load', '?')}, peak RSS "
        f"{new.get('peak_rss_mb', float('nan')):.0f} MB. Model load (once): {old['load_s']:.1f} s before, "
        f"{new['load_s']:.1f} s now. Linear form proven optimal and certified now: {same}/{len(new['rows'])}.", "",
        *table(["stage", "previous (s)", "now (s)", "now / previous"], cells)])


def main() -> None:
    ap = parser(__doc__)
    add_photo_args(ap, images=50)
    ap.add_argument("--top-k", type=int, default=3000)
    ap.add_argument("--gamma", type=float, default=0.0)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--ig-steps", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--json", default=None, help="also write the raw rows here")
    ap.add_argument("--ig-quality", type=int, default=0, metavar="K", help="IG rules against 512 steps on K photos")
    ap.add_argument("--compare", nargs=2, type=Path, default=None, metavar=("OLD.json", "NEW.json"),
                    help="the side-by-side section from two --json runs")
    add_doc_args(ap)
    a = ap.parse_args()
    if a.ig_quality:
        res = ig_quality(a.data, a.ig_quality, a.top_k)
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=1))
        publish(a, "ig_quadrature", "IG quadrature on EfficientNet-Lite0 against 512 steps (issue 16)",
                invocation("smug_imagenet"), ig_markdown(res))
        return
    if a.compare:
        old, new = (json.loads(p.read_text()) for p in a.compare)
        publish(a, "smug_imagenet_compare", "SMUG on Lite0: previous commit vs this one, same photos (issue 16)",
                invocation("smug_imagenet"), compare_markdown(old, new))
        return
    res = run(a.data, a.images, a.top_k, a.gamma, a.window, a.ig_steps, a.timeout)
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    publish(a, "smug_imagenet", TITLE, invocation("smug_imagenet"), markdown(res))


if __name__ == "__main__":
    main()
