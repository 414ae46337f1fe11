"""Masks that keep the decision (issue 14): plain SMUG against SMUG's keep-class mode.

    nice -n 10 python -m smug.bench.keep_class                      # 50 photos, 200 snippets, writes docs
    nice -n 10 python -m smug.bench.keep_class --images 5 --texts 20 --no-doc   # a quick check
    python -m smug.bench.keep_class --stage write                   # the docs section from the store only

Photos: the first ``--images`` photos (sorted) of ``../shared/data/imagenet-sample`` with
EfficientNet-Lite0 (k = 3000, gamma = 0, window 4, the default solver timeout), each
explained twice through :func:`smug.pipeline.explain`: plain SMUG and ``keep_class=True``.
Per photo: whether the masked image keeps the predicted class (float32 forward pass), the
target's probability on it, the mask size in 4x4 blocks (of 56 x 56 = 3136), the wall time
of each call, the keep-class mode's final (k, gamma) and every step; and for comparison
paper 000's stopping-criterion size (:func:`smug.baselines.stopping.stopping_criterion`,
4x4 blocks, ``search="bisect"``, as ``smug evaluate --stopping``) of the Grad-CAM and
gradient maps of the same photo.  Texts: the first ``--texts`` snippets of the vader
movie-review file in file order (third tab-separated column), ``text-cnn`` with the SMUG
row only; "keeps the decision" is the masked rating staying on its side of 0.5.

Results go to ``out/keep_class.jsonl`` (one line per photo or text; a re-run skips what is
there, so the run can be stopped and resumed).  A warm-up call loads each model first, so
the times are those of a warm process.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections import Counter
from pathlib import Path

import numpy as np

from smug.bench.common import (OUT, add_doc_args, add_photo_args, invocation, parser, photos, publish, table,
                               uptime)
from smug.bench.datasets import SNIPPETS, read_snippets

STORE = OUT / "keep_class.jsonl"
UPTIME_LOG = OUT / "keep_class_uptime.log"  # `uptime` lines sampled while the benchmark ran (optional)
MODEL = "efficientnet-lite0"
PHOTO_PARAMS = {"top_k": 3000, "gamma": 0.0, "window": 4}
TEXT_PARAMS = {"rows": ("smug",)}
STOP_METHODS = ("gradcam", "gradient")


# ---- one item ------------------------------------------------------------------------
def _timed(source, model: str, **params) -> tuple[object, float]:
    from smug.pipeline import explain

    t0 = time.perf_counter()
    e = explain(source, model, **params)
    return e, time.perf_counter() - t0


def _summary(e, seconds: float) -> dict:
    """What the benchmark keeps of one answer."""
    out = {"status": e.status, "objective": e.objective, "lower_bound": e.lower_bound,
           "certificate": bool(e.certificate.get("valid")), "keeps_class": e.keeps_class,
           "masked_confidence": e.masked_confidence, "seconds": round(seconds, 3)}
    keep = e.encoding.get("keep_class")
    if keep is not None:
        out["keep"] = {"kept": keep.get("kept"), "constraints": keep.get("constraints"), "note": keep.get("note"),
                       "steps": [{k: s.get(k) for k in ("top_k", "gamma", "status", "objective", "keeps_class",
                                                        "confidence", "margin", "seconds")}
                                 for s in keep.get("steps") or []]}
    return out


def photo_record(path: Path, model, entry, timeout: float | None) -> dict:
    from smug.baselines.attribution import attribute
    from smug.baselines.stopping import stopping_criterion

    params = {**PHOTO_PARAMS, **({} if timeout is None else {"timeout": timeout})}
    plain, t_plain = _timed(str(path), MODEL, **params)
    keep, t_keep = _timed(str(path), MODEL, keep_class=True, **params)
    rec = {"kind": "photo", "name": path.name, "target": plain.target, "target_name": plain.target_name,
           "confidence": plain.confidence, "n_blocks": plain.n_vars,
           "plain": _summary(plain, t_plain), "keep_class": _summary(keep, t_keep), "stopping": {}}
    x, _ = entry.preprocess.load(path)
    for m in STOP_METHODS:
        a = attribute(model, x, target=plain.target, method=m)
        s = stopping_criterion(model, x, a.map, plain.target, window=PHOTO_PARAMS["window"], search="bisect")
        rec["stopping"][m] = {"blocks": s.size, "fraction": None if s.mask is None else float(np.mean(s.mask)),
                              "seconds": round(a.seconds + s.seconds, 3)}
    return rec


def text_record(index: int, text: str, timeout: float | None) -> dict:
    params = {**TEXT_PARAMS, **({} if timeout is None else {"timeout": timeout})}
    plain, t_plain = _timed(None, "text-cnn", text=text, **params)
    keep, t_keep = _timed(None, "text-cnn", text=text, keep_class=True, **params)
    return {"kind": "text", "index": index, "n_words": len(plain.text.words), "rating": plain.text.rating,
            "direction": plain.text.direction, "n_vars": plain.n_vars,
            "plain": _summary(plain, t_plain), "keep_class": _summary(keep, t_keep)}


# ---- the store -------------------------------------------------------------------------
def load(store: Path = STORE) -> dict[tuple[str, str], dict]:
    out = {}
    if store.exists():
        for line in store.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                out[(r["kind"], str(r.get("name", r.get("index"))))] = r
    return out


def run_photos(files: list[Path], timeout: float | None, store: Path = STORE) -> None:
    from smug.models.zoo import load_model

    done = load(store)
    todo = [f for f in files if ("photo", f.name) not in done]
    if not todo:
        return
    model, entry = load_model(MODEL)
    _timed(str(files[0]), MODEL, **PHOTO_PARAMS)  # warm-up: Lite0 export/sessions, torch copy
    store.parent.mkdir(parents=True, exist_ok=True)
    with store.open("a") as f:
        for path in todo:
            r = photo_record(path, model, entry, timeout)
            f.write(json.dumps(r) + "\n")
            f.flush()
            p, k = r["plain"], r["keep_class"]
            print(f"{path.name}: plain {p['objective']} blocks keeps={p['keeps_class']} {p['seconds']:.1f}s | "
                  f"keep-class {k['objective']} blocks keeps={k['keeps_class']} {k['seconds']:.1f}s "
                  f"(k, gamma)={tuple(k['keep']['constraints'].values())[:2]}", flush=True)


def run_texts(texts: list[str], timeout: float | None, store: Path = STORE) -> None:
    done = load(store)
    todo = [i for i in range(len(texts)) if ("text", str(i)) not in done]
    if not todo:
        return
    _timed(None, "text-cnn", text="warm up the model", **TEXT_PARAMS)
    store.parent.mkdir(parents=True, exist_ok=True)
    with store.open("a") as f:
        for i in todo:
            r = text_record(i, texts[i], timeout)
            f.write(json.dumps(r) + "\n")
            f.flush()
            p, k = r["plain"], r["keep_class"]
            print(f"text {i}: plain {p['objective']}/{r['n_vars']} words keeps={p['keeps_class']} | keep-class "
                  f"{k['objective']} keeps={k['keeps_class']} {k['seconds']:.2f}s", flush=True)


# ---- the docs ---------------------------------------------------------------------------
def _med(values) -> float:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else float("nan")


def _share(values) -> str:
    values = list(values)
    n, kept = len(values), sum(1 for v in values if v)
    return f"{kept}/{n} ({100.0 * kept / n:.0f}%)" if n else "-"


def _final(r: dict) -> str:
    """The final (k, gamma) in words: k of the first step (min(requested k, positively attributed
    neurons)) or every positively attributed neuron."""
    rep = r["keep_class"].get("keep") or {}
    c, steps = rep.get("constraints") or {}, rep.get("steps") or []
    if not c or not steps:
        return "no report"
    k = "k=first" if c.get("top_k") == steps[0]["top_k"] else f"k={c.get('top_k')} (raised)"
    return f"{k}, gamma={c.get('gamma'):g}"


def _all_step_seconds(r: dict) -> float:
    """Seconds of the solved steps whose k differs from the first step's (the k = all steps)."""
    steps = (r["keep_class"].get("keep") or {}).get("steps") or []
    return sum(s["seconds"] for s in steps if steps and s["top_k"] != steps[0]["top_k"])


def _failure(r: dict, label: str) -> str:
    k = r["keep_class"]
    rep = k.get("keep") or {}
    steps = "; ".join(f"(k={s['top_k']}, gamma={s['gamma']:g}): {s['status']}, {s['objective']} kept, "
                      f"p={s['confidence'] if s['confidence'] is None else round(s['confidence'], 3)}"
                      for s in rep.get("steps", []))
    return (f"- {label}: status {k['status']}, {k['seconds']:.1f} s; note: {rep.get('note')!r}; "
            f"steps: {steps or 'none'}")


def body(records: list[dict], kind: str, requested_k: int, unit: str) -> list[str]:
    rs = [r for r in records if r["kind"] == kind]
    if not rs:
        return [f"No {kind} results in the store."]
    plain = [r["plain"] for r in rs]
    keep = [r["keep_class"] for r in rs]
    tp, tk = _med(p["seconds"] for p in plain), _med(k["seconds"] for k in keep)
    ratio = _med(k["seconds"] / p["seconds"] for p, k in zip(plain, keep) if p["seconds"])
    size = (lambda r, which: r[which]["objective"])
    total = "n_blocks" if kind == "photo" else "n_vars"
    frac = lambda which: _med(100.0 * size(r, which) / r[total] for r in rs  # noqa: E731
                              if size(r, which) is not None and r[total])
    lost = [r for r in rs if not r["plain"]["keeps_class"]]
    rows = [["masked input keeps the decision", _share(p["keeps_class"] for p in plain),
             _share(k["keeps_class"] for k in keep)],
            [f"mask size, median ({unit})", f"{_med(size(r, 'plain') for r in rs):g}",
             f"{_med(size(r, 'keep_class') for r in rs):g}"],
            [f"mask size, median (% of the {unit})", f"{frac('plain'):.1f}", f"{frac('keep_class'):.1f}"],
            ["target probability on the masked input, median" if kind == "photo" else
             "masked rating, median", f"{_med(p['masked_confidence'] for p in plain):.3f}",
             f"{_med(k['masked_confidence'] for k in keep):.3f}"],
            [f"mask size, median ({unit}), on the {len(lost)} items whose plain mask loses the decision",
             f"{_med(size(r, 'plain') for r in lost):g}", f"{_med(size(r, 'keep_class') for r in lost):g}"],
            [f"mask is every {unit[:-1] if unit.endswith('s') else unit} (the whole input)",
             _share(size(r, "plain") == r[total] for r in rs), _share(size(r, "keep_class") == r[total] for r in rs)],
            ["status optimal", _share(p["status"] == "optimal" for p in plain),
             _share(k["status"] == "optimal" for k in keep)],
            ["wall time per call, median (s)", f"{tp:.2f}", f"{tk:.2f}"],
            ["wall time per call, 90th percentile (s)",
             f"{np.percentile([p['seconds'] for p in plain], 90):.2f}",
             f"{np.percentile([k['seconds'] for k in keep], 90):.2f}"],
            ["steps solved, median", "1", f"{_med(len((k.get('keep') or {}).get('steps', [])) for k in keep):g}"]]
    lines = table(["", "plain SMUG", "keep-class SMUG"], rows)
    lines += ["", f"Time ratio keep-class / plain: {tk / tp:.2f}x of the medians; median of the per-item ratios "
              f"{ratio:.2f}x (goal: at most 3x)."]
    dist = Counter(_final(r) for r in rs)
    lines += ["", "Final constraint set of the keep-class answers (k=first: the first step's k = min("
              f"{requested_k}, positively attributed first-layer neurons); k=N (raised): the ladder multiplied k by 3 "
              "at gamma 0.99, up to every positively "
              "attributed first-layer neuron):", ""]
    lines += table(["final (k, gamma)", "count"], sorted(dist.items(), key=lambda kv: -kv[1]))
    if kind == "photo":
        stop_rows = []
        for m in STOP_METHODS:
            blocks = [r["stopping"][m]["blocks"] for r in rs if r["stopping"][m]["blocks"] is not None]
            fr = [r["stopping"][m]["fraction"] for r in rs if r["stopping"][m]["fraction"] is not None]
            stop_rows.append([f"{m} map, stopping criterion", f"{_med(blocks):g}", f"{100 * _med(fr):.1f}",
                              f"{_med(r['stopping'][m]['seconds'] for r in rs):.2f}"])
        for which, label in (("plain", "plain SMUG mask"), ("keep_class", "keep-class SMUG mask")):
            sz = [size(r, which) for r in rs if size(r, which) is not None]
            stop_rows.append([label, f"{_med(sz):g}", f"{frac(which):.1f}",
                              f"{_med(r[which]['seconds'] for r in rs):.2f}"])
        lines += ["", "Paper 000's stopping criterion on the same photos (4x4 blocks ranked by the map, "
                  "everything else at the model's zero, smallest prefix predicting the class, "
                  "`search=\"bisect\"`), beside the SMUG masks:", ""]
        lines += table(["", "size, median (blocks)", "size, median (% of pixels)", "seconds, median"], stop_rows)
    finals = [_final(r) for r in lost]
    by_gamma = sum(f.startswith("k=first") for f in finals)
    by_all = [r for r, f in zip(lost, finals) if not f.startswith("k=first")]
    whole = sum(size(r, "keep_class") == r[total] for r in by_all)
    lines += ["", f"Reading: plain SMUG's mask loses the decision on {len(lost)} of {len(rs)} items. Of those, the "
              f"keep-class mode kept it by raising gamma with the first k on {by_gamma}, and needed more "
              f"neurons (k raised) on {len(by_all)}"
              + (f"; {whole} of these {len(by_all)} answers are the whole input (every "
                 f"{unit[:-1] if unit.endswith('s') else unit} kept), which keeps the decision trivially; their "
                 f"raised-k steps took a median {_med(_all_step_seconds(r) for r in by_all):.1f} s of their "
                 f"{_med(r['keep_class']['seconds'] for r in by_all):.1f} s per call."
                 if by_all else ".")]
    fails = [r for r in rs if not r["keep_class"]["keeps_class"]]
    label = (lambda r: r["name"]) if kind == "photo" else (lambda r: f"snippet {r['index']} ({r['n_words']} words)")
    lines += ["", f"Keep-class failures: {len(fails)} of {len(rs)}" + (":" if fails else ".")]
    lines += [_failure(r, label(r)) for r in fails]
    return lines


def load_during(path: Path = UPTIME_LOG) -> str:
    """The 1-minute load averages of the ``uptime`` lines in ``path``: median and range, or ''."""
    if not path.is_file():
        return ""
    loads = [float(m) for m in re.findall(r"load average: ([0-9.]+)", path.read_text())]
    if not loads:
        return ""
    return (f" 1-minute load average while it ran (`uptime` every minute, {len(loads)} samples, "
            f"`{path.name}`): median {statistics.median(loads):.1f}, range {min(loads):.1f}-{max(loads):.1f} "
            f"on {os.cpu_count()} CPUs (the machine is shared; other jobs ran beside it, so times are inflated "
            "and noisy, for both modes alike).")


def write(args, records: list[dict], n_photos: int, n_texts: int) -> str:
    photos_done = sum(r["kind"] == "photo" for r in records)
    texts_done = sum(r["kind"] == "text" for r in records)
    lines = [f"Store `{args.store.name}`. Photos: {photos_done} of the first {n_photos} asked (sorted) of "
             "`../shared/data/imagenet-sample/`, EfficientNet-Lite0, k = 3000, gamma = 0, window 4, default "
             "timeout (60 s; keep-class: the whole ladder gets 4 timeouts). Each photo is explained twice, plain "
             "and `keep_class=True`, each through `smug.pipeline.explain` (IG included, warm process). "
             f"`uptime` at writing: {uptime()}." + load_during(args.uptime_log)
             + (f" {args.note}" if args.note else ""),
             "",
             "### Photos (EfficientNet-Lite0)", ""]
    lines += body(records, "photo", PHOTO_PARAMS["top_k"], "4x4 blocks")
    lines += ["", f"### Texts (text-cnn, {texts_done} of the first {n_texts} snippets in file order)", "",
              "k = 100, gamma = 0, SMUG row only; a word is one mask variable; \"keeps the decision\": the "
              "masked rating stays on the side of 0.5 of the original rating.", ""]
    lines += body(records, "text", 100, "words")
    return publish(args, "keep_class", "Masks that keep the decision: plain vs keep-class SMUG (issue 14)",
                   invocation("keep_class", "nice -n 10"), "\n".join(lines))


def main() -> None:
    ap = parser(__doc__)
    add_photo_args(ap, images=50)
    ap.add_argument("--texts", type=int, default=200, help="snippets used (first of the file)")
    ap.add_argument("--snippets", type=Path, default=SNIPPETS, help="vader snippets file (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=None, help="solver timeout per call (default: smug's)")
    ap.add_argument("--stage", choices=("all", "photos", "texts", "write"), default="all")
    ap.add_argument("--note", default="", help="a sentence added to the section (e.g. why fewer photos were run)")
    ap.add_argument("--store", type=Path, default=STORE, help="results, one JSON line per item (resumable)")
    ap.add_argument("--uptime-log", type=Path, default=UPTIME_LOG,
                    help="`uptime` lines sampled during the run, summarised in the section if present")
    add_doc_args(ap)
    a = ap.parse_args()
    files = photos(a.data, a.images)
    texts = read_snippets(a.snippets)[0][: a.texts]
    if a.stage in ("all", "texts"):
        run_texts(texts, a.timeout, a.store)
    if a.stage in ("all", "photos"):
        run_photos(files, a.timeout, a.store)
    names = {f.name for f in files}
    records = [r for r in load(a.store).values()
               if (r["kind"] == "photo" and r["name"] in names) or (r["kind"] == "text" and r["index"] < a.texts)]
    write(a, records, a.images, a.texts)


if __name__ == "__main__":
    main()
