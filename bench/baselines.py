"""Baseline attribution methods on EfficientNet-Lite0 over real photos (paper 000 Table I form).

    nice -n 10 python -m smug.bench.baselines                  # measure (resumable), then write docs/benchmarks.md
    nice -n 10 python -m smug.bench.baselines --stage eval     # measure only
    python -m smug.bench.baselines --stage write               # the docs section from the store
    # the same measurement with an older checkout of the package (one with smug.bench, unpacked as OLD/smug), for before/after columns:
    PYTHONPATH=OLD nice -n 10 python -m smug.bench.baselines --stage eval --label before \\
        --methods gradient,gradcam,extremal_perturbation --slow-images 10

Photos: the first ``--images`` (50) of ../shared/data/imagenet-sample in sorted order;
the slow methods (extremal perturbation, SFL, RISE, occlusion) on the first
``--slow-images`` (10) of them.  Per method and photo: the method's wall and CPU
(process) seconds for one ``attribute`` call, then paper 000's stopping criterion
on its map (4x4 blocks, coarse-to-fine search): seconds and size (pixels kept).
Methods with a batched form (``attribute_batch``) are also timed on the whole set
at once (per-photo time = batch time / photos).  One torch thread and one
onnxruntime thread unless the environment says otherwise.  Model loading and the
one-off torch conversions are paid before timing.  Results go to a JSON-lines
store (``out/baselines.jsonl``); a re-run skips what is there.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

import smug
from smug.baselines.attribution import attribute, methods
from smug.baselines.stopping import stopping_criterion
from smug.bench.common import OUT, add_doc_args, add_photo_args, invocation, parser, photos, publish, table, uptime
from smug.models.zoo import load_model

os.environ.setdefault("SMUG_TORCH_THREADS", "1")  # read when torch / onnxruntime are first used
os.environ.setdefault("SMUG_ORT_THREADS", "1")
TITLE = "Baselines on EfficientNet-Lite0 (issue 5, paper 000 Table I form)"
STORE = OUT / "baselines.jsonl"
BATCH_REPEATS = 3
GOALS = {"gradient": 0.03, "gradcam": 0.03, "extremal_perturbation": 10.0, "sfl": 15.0, "sis": 60.0}
SLOW = ("extremal_perturbation", "sfl", "rise", "occlusion", "sis")
# maxbox: the whole image; text_*: token-sequence models only.  SIS on Lite0's 3,136 blocks is the
# batched gradient SIS (issue 16; the exact backward selection needs ~n^2/2 forward passes).
SKIP = ("maxbox",)
PAPER = {  # paper 000 Table I (VGG16, TorchRay / DeepCover code), minutes -> seconds
    "gradient": (1.5e-4 * 60, 2.9 * 60), "gradcam": (1.5e-4 * 60, 1.2 * 60),
    "extremal_perturbation": (1.9e-1 * 60, 2.2 * 60), "sfl": (41.3 * 60, 41.3 * 60),
}


def image_methods() -> list[str]:
    return ["smug"] + [m for m in methods() if m not in SKIP and not m.startswith("text")]


def load_store(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _stop(model, x, saliency, target) -> dict:
    stop = stopping_criterion(model, x, np.abs(saliency), target=target, window=4, search="bisect")
    return {"stop_s": stop.seconds, "stop_blocks": stop.size,
            "stop_pixels": None if stop.mask is None else int(np.sum(stop.mask))}


def run(files: list[Path], slow_files: list[Path], names: list[str], label: str, store: Path) -> None:
    from smug.pipeline import explain

    model, entry = load_model("efficientnet-lite0")
    done = {(r["label"], r["mode"], r["method"], r["image"]) for r in load_store(store)}
    store.parent.mkdir(parents=True, exist_ok=True)
    xs = {f.name: entry.preprocess.load(f)[0] for f in files}
    x0 = xs[files[0].name]
    for m in names:  # one-off conversions and caches before timing
        if m not in ("smug",) and m not in SLOW:
            attribute(model, x0, method=m)
    if "extremal_perturbation" in names:
        attribute(model, x0, method="extremal_perturbation", iterations=1)
    batched = getattr(smug.baselines.attribution, "BATCHED", {})

    def record(rec: dict) -> None:
        rec.update(label=label, load=os.getloadavg()[0])
        with store.open("a") as fh:
            fh.write(json.dumps(rec) + "\n")

    for m in names:
        subset = slow_files if m in SLOW else files
        for f in subset:
            if (label, "single", m, f.name) in done:
                continue
            x = xs[f.name]
            t, c = time.perf_counter(), time.process_time()
            if m == "smug":
                e = explain(x, model="efficientnet-lite0")
                saliency, target = e.saliency, e.target
            else:
                att = attribute(model, x, method=m)
                saliency, target = att.map, att.target
            rec = {"mode": "single", "method": m, "image": f.name, "s": time.perf_counter() - t,
                   "cpu_s": time.process_time() - c, "target": int(target)}
            if m == "extremal_perturbation":
                rec["p_final"] = float(np.ravel(att.params["p_final"])[0])
            rec.update(_stop(model, x, saliency, target))
            record(rec)
            print(f"{label} {m} {f.name}: {rec['s']:.3f}s, stop {rec['stop_s']:.2f}s {rec['stop_pixels']} px",
                  flush=True)
        if m in batched and not any((label, "batched", m, f.name) in done for f in subset):
            from smug.baselines.attribution import attribute_batch

            batch = np.stack([xs[f.name] for f in subset])
            reps = []
            for _ in range(BATCH_REPEATS):  # cheap: repeated, the other jobs on the machine add noise
                t, c = time.perf_counter(), time.process_time()
                atts = attribute_batch(model, batch, method=m)
                reps.append(((time.perf_counter() - t) / len(subset), (time.process_time() - c) / len(subset)))
            for f, att in zip(subset, atts):
                rec = {"mode": "batched", "method": m, "image": f.name, "s": statistics.median(r[0] for r in reps),
                       "cpu_s": statistics.median(r[1] for r in reps), "s_min": min(r[0] for r in reps),
                       "target": int(att.target), "batch": len(subset), "repeats": len(reps)}
                rec.update(_stop(model, xs[f.name], att.map, att.target))
                record(rec)
            print(f"{label} {m} batched x{len(subset)}: {[round(r[0], 4) for r in reps]} s per image", flush=True)


def _median(vals) -> float:
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else float("nan")


def _fmt(v: float) -> str:
    if v != v:
        return "-"
    return f"{v:.4f}" if v < 0.1 else f"{v:.3f}" if v < 10 else f"{v:.1f}"


def markdown(recs: list[dict], files: list[Path], slow_files: list[Path]) -> str:
    """The section's body (after its title and command)."""
    after = [r for r in recs if r["label"] == "after"]
    before = [r for r in recs if r["label"] == "before"]
    names = list(dict.fromkeys(r["method"] for r in after))
    loads = [r["load"] for r in after]
    n_pix = 224 * 224
    out = [
        f"Photos: the first {len(files)} of shared/data/imagenet-sample (sorted); the slow methods "
        f"({', '.join(SLOW)}) on the first {len(slow_files)} of them. {platform.machine()}, 2 cores shared with "
        f"other agents' jobs (1-min load average during the run: median {_median(loads):.1f}, max "
        f"{max(loads, default=float('nan')):.1f}; `uptime` when written: {uptime()}), run with `nice -n 10`, "
        f"CPU only, {os.environ['SMUG_TORCH_THREADS']} torch thread, {os.environ['SMUG_ORT_THREADS']} onnxruntime "
        "thread. Default parameters of each method (extremal perturbation: area 0.1, 300 Adam steps; RISE 2,000 "
        "masks; SFL 2,000 mutants). Times are medians over photos; *s / image* is one `attribute` call (wall "
        "clock; CPU = process time, less sensitive to the other jobs); *batched* is `attribute_batch` over all the "
        "photos at once divided by their number. Stopping criterion (paper 000): 4x4 blocks, coarse-to-fine "
        "search, on the single-call map; *with stopping criterion* = method + criterion, per photo.", "",
    ]
    cells = []
    for m in names:
        single = [r for r in after if r["method"] == m and r["mode"] == "single"]
        batch = [r for r in after if r["method"] == m and r["mode"] == "batched"]
        px = _median(r["stop_pixels"] for r in single)
        goal = f"≤ {GOALS[m]:g} s" if m in GOALS else ""
        fastest = f" ({_fmt(min(r.get('s_min', r['s']) for r in batch))})" if batch else ""
        cells.append([m, len(single), _fmt(_median(r["s"] for r in single)),
                      _fmt(min((r["s"] for r in single), default=float("nan"))),
                      _fmt(_median(r["cpu_s"] for r in single)), _fmt(_median(r["s"] for r in batch)) + fastest,
                      goal, _fmt(_median(r["stop_s"] for r in single)),
                      _fmt(_median(r["s"] + r["stop_s"] for r in single)), f"{px:.0f} ({px / n_pix:.1%})",
                      sum(r["stop_pixels"] is None for r in single)])
    out += table(["method", "photos", "s / image", "fastest photo s", "CPU s / image",
                  "batched s / image (fastest run)", "goal", "stopping criterion s", "with stopping criterion s",
                  "explanation size, pixels (share)", "no prefix kept the class"], cells)
    p_final = [r["p_final"] for r in after if r.get("p_final") is not None]
    if p_final:
        out += ["", f"Extremal perturbation (area 0.1, 300 steps): the target's probability on the perturbed input "
                f"with the final mask, median {_median(p_final):.2f} (min {min(p_final):.2f}) over "
                f"{len(p_final)} photos."]
    out += ["", "Paper 000 Table I (VGG16 on its authors' machine, means over 1,000 images) for scale: gradient "
            "0.009 s (174 s with stopping criterion), Grad-CAM 0.009 s (72 s), extremal perturbation 11.4 s "
            "(132 s), DeepCover 41.3 min."]
    if before:
        out += ["", "Before / after this change, same photos, measured one after the other in the same session "
                "(minutes apart, so under different loads from the other jobs: see the load columns): "
                "`git archive HEAD` of "
                "the previous commit unpacked as OLD/smug (a scratch folder), then `PYTHONPATH=OLD nice -n 10 python "
                "-m smug.bench.baselines --stage eval --label before --methods "
                f"{','.join(dict.fromkeys(r['method'] for r in before))} --images {len({r['image'] for r in before})} "
                f"--slow-images {len({r['image'] for r in before})}` "
                "(the older package through this script):", ""]
        cells = []
        for m in dict.fromkeys(r["method"] for r in before):
            for mode in ("single", "batched"):
                b = {r["image"]: r for r in before if r["method"] == m and r["mode"] == "single"}
                a = {r["image"]: r for r in after if r["method"] == m and r["mode"] == mode}
                common = sorted(set(a) & set(b))
                if not common:
                    continue
                bs, as_ = _median(b[i]["s"] for i in common), _median(a[i]["s"] for i in common)
                bc, ac = _median(b[i]["cpu_s"] for i in common), _median(a[i]["cpu_s"] for i in common)
                cells.append([m, mode, len(common), _fmt(bs), _fmt(as_), f"{as_ / bs:.2f}", _fmt(bc), _fmt(ac),
                              f"{ac / bc:.2f}", f"{_median(b[i]['load'] for i in common):.1f}",
                              f"{_median(a[i]['load'] for i in common):.1f}"])
        out += table(["method", "mode", "photos", "before s / image", "after s / image", "after / before",
                      "before CPU s", "after CPU s", "after / before (CPU)", "load before", "load after"], cells)
    return "\n".join(out)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--stage", choices=("all", "eval", "write"), default="all")
    add_photo_args(ap, images=50)
    ap.add_argument("--slow-images", type=int, default=10, help="first N photos for the slow methods")
    ap.add_argument("--methods", default=None, help="comma-separated (default: smug and every image method)")
    ap.add_argument("--label", default="after", help="'after' (this tree) or 'before' (an older checkout)")
    ap.add_argument("--store", default=str(STORE))
    add_doc_args(ap)
    a = ap.parse_args()
    files = photos(a.data, a.images)
    slow_files = files[: a.slow_images]
    names = a.methods.split(",") if a.methods else image_methods()
    if a.stage in ("all", "eval"):
        run(files, slow_files, names, a.label, Path(a.store))
    if a.stage in ("all", "write"):
        body = markdown(load_store(Path(a.store)), files, slow_files)
        publish(a, "baselines", TITLE, invocation("baselines", prefix="nice -n 10"), body)


if __name__ == "__main__":
    main()
