"""Robust explanations (issue 30): smug's subset- and cardinality-minimal modes against VeriX.

    nice -n 10 python -m smug.bench.robust --digits 100                     # smug on the three networks
    python -m smug.bench.robust --nets mnist-10x2 --digits 10 --cpu-clock   # budgets in CPU seconds
    python -m smug.bench.robust --stage marabou --marabou-python VENV/bin/python --verix-digits 5
    python -m smug.bench.robust --stage write                               # the docs section only

The first ``--digits`` digits of the MNIST test split (:func:`smug.bench.datasets.mnist_split`),
epsilon 0.05 (L-inf, clipped to [0, 1]), one feature per pixel, the predicted class, on VeriX's
``mnist-10x2`` (``../shared/peers/verix/``) and the zoo's ``mnist-mlp`` and ``mnist-cnn``.  Per digit: the
subset-minimal answer (``--subset-timeout``), then the cardinality search seeded with it
(``--card-timeout`` more seconds; with ``--cpu-clock`` both budgets count this process's CPU
seconds, for a machine shared with other work): sizes, wall and CPU seconds, status, the proven lower bound,
and a re-check of every kept pixel's counterexample (exact replay in the box of E minus that
pixel).  ``--stage marabou`` runs ``bench/robust_marabou.py`` in a separate environment holding
``maraboupy==2.0.0`` (not a smug dependency): VeriX's traversal (a Marabou query per pixel and
other class, as published) on the first ``--verix-digits`` digits, and one Marabou query per smug answer re-verifying it independently.
Results: ``out/robust.jsonl`` and ``out/robust_marabou.jsonl`` (a re-run skips what is there).
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads, as the smug executable (smug.command)
import numpy as np

from smug.bench.common import OUT, ROOT, add_doc_args, invocation, parser, publish, table, uptime
from smug.bench.datasets import mnist_split

STORE = OUT / "robust.jsonl"
MARABOU_STORE = OUT / "robust_marabou.jsonl"
NETS = {"mnist-10x2": ROOT.parent / "shared" / "peers" / "verix" / "mnist-10x2.onnx", "mnist-mlp": None,
        "mnist-cnn": None}
EPSILON = 0.05


def _model(net: str):
    from smug.models.runtime import OnnxModel
    from smug.models.zoo import load_model

    return OnnxModel.load(NETS[net]) if NETS[net] is not None else load_model(net)[0]


def _path(net: str) -> Path:
    from smug.models.zoo import load_model

    return NETS[net] if NETS[net] is not None else load_model(net)[1].onnx_path()


def _done(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return {r["key"]: r for r in map(json.loads, path.read_text().splitlines())}


def _runs(path: Path) -> list[dict]:
    """Every record of the store, the last one per digit and commit (a side-by-side run of two
    commits merged into one store keeps both)."""
    if not path.exists():
        return []
    return list({(r["key"], r.get("commit")): r for r in map(json.loads, path.read_text().splitlines())}.values())


def _kept_replay(verifier, answer) -> bool:
    """Every kept pixel's counterexample lies in the box of E minus that pixel and fails exactly."""
    for p, cex in answer.counterexamples.items():
        without = answer.fixed.copy()
        without[p] = False
        if verifier.replay(cex.input, without) is None:
            return False
    return True


def run_smug(net: str, digit: int, x: np.ndarray, subset_timeout: float, card_timeout: float,
             budget: float | None = None) -> dict:
    """smug's two modes on one digit: the subset search, then the cardinality search seeded with it
    (``card_timeout`` more seconds; with ``budget``, both end ``budget`` seconds after the start, one
    deadline as in the pipeline's cardinality mode)."""
    from smug.pipeline.robust import RobustConfig, robust_query, runtime_replay
    from smug.solver.robust import Verifier
    from smug.solver.robust_explain import cardinality_minimal, subset_minimal

    model = _model(net)
    query = robust_query(model, x.reshape(model.input_shape), RobustConfig(epsilon=EPSILON))
    verifier = Verifier(query, runtime=runtime_replay(model))
    # wall seconds by time.monotonic: --cpu-clock turns the solver's clock (time.perf_counter) into CPU seconds
    t0, c0, start = time.monotonic(), time.process_time(), time.perf_counter()
    end = start + budget if budget is not None else float("inf")
    sub = subset_minimal(verifier, min(start + subset_timeout, end))
    t1, c1 = time.monotonic(), time.process_time()
    card = cardinality_minimal(verifier, min(time.perf_counter() + card_timeout, end), start=sub)
    t2, c2 = time.monotonic(), time.process_time()
    return {
        "key": f"{net}/{digit}", "net": net, "digit": digit, "target": int(query.problem.target),
        "subset": {"size": sub.size, "status": sub.status, "proof": sub.proof, "unresolved": len(sub.unresolved),
                   "seconds": t1 - t0, "cpu": c1 - c0, "kept_replay": _kept_replay(verifier, sub),
                   "fixed": np.flatnonzero(sub.fixed).tolist()},
        "cardinality": {"size": card.size, "status": card.status, "lower_bound": card.lower_bound,
                        "proof": card.proof, "seconds": t2 - t1, "cpu": c2 - c1,
                        "fixed": np.flatnonzero(card.fixed).tolist()},
        "stats": card.stats, "commit": COMMIT, "budget": budget,
    }


def _commit() -> str:
    """The commit checked out when the bench started (the code it loaded)."""
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()


COMMIT = _commit()


def stage_smug(args) -> None:
    if args.cpu_clock:  # every deadline of the solver reads this clock: budgets in CPU seconds of this process
        time.perf_counter = time.process_time
    _, _, xt, _ = mnist_split()
    done = _done(STORE)
    STORE.parent.mkdir(parents=True, exist_ok=True)
    for d in range(args.start, args.digits):
        for net in args.nets:
            if f"{net}/{d}" in done:
                continue
            rec = run_smug(net, d, xt[d].ravel().astype(np.float64), args.subset_timeout, args.card_timeout,
                           args.budget)
            with STORE.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            s, c = rec["subset"], rec["cardinality"]
            print(f"{rec['key']}: subset {s['size']} ({s['seconds']:.1f}s) card {c['size']} >= {c['lower_bound']} "
                  f"{c['status']} ({c['seconds']:.1f}s)", flush=True)


def stage_marabou(args) -> None:
    if not args.marabou_python:
        raise SystemExit("--marabou-python: the python of an environment with maraboupy==2.0.0")
    _, _, xt, _ = mnist_split()
    done, smug = _done(MARABOU_STORE), _done(STORE)
    jobs = []
    for net in args.nets:
        path = str(_path(net))
        model = _model(net)
        for d in range(args.start, args.digits):
            rec = smug.get(f"{net}/{d}")
            x = xt[d].ravel().astype(np.float64)
            target = int(np.argmax(model.logits(x.reshape((1,) + tuple(model.input_shape)).astype(np.float32))[0]))
            base = {"net": path, "x": x.tolist(), "target": target, "epsilon": EPSILON}
            if d < args.verix_digits and f"verix/{net}/{d}" not in done:
                jobs.append({**base, "key": f"verix/{net}/{d}", "mode": "verix", "timeout": args.verix_timeout})
            if rec is None or not args.checks:
                continue
            for mode in args.check_modes:
                key = f"check/{mode}/{net}/{d}"
                if key not in done:
                    fixed = np.zeros(784, bool)
                    fixed[rec[mode]["fixed"]] = True
                    jobs.append({**base, "key": key, "mode": "check", "timeout": 600, "fixed": fixed.tolist()})
    jobs.sort(key=lambda j: j["mode"] != "check")  # the cheap checks first
    job_file = OUT / f"robust_marabou_jobs_{os.getpid()}.jsonl"  # one per run: runs may overlap
    job_file.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    subprocess.run([args.marabou_python, str(ROOT / "bench" / "robust_marabou.py"), str(job_file),
                    str(MARABOU_STORE)], check=True)


@functools.lru_cache(maxsize=1)
def mnist_test_images() -> np.ndarray:
    """The MNIST test split's images (read once)."""
    return mnist_split()[2]


def replay_witness(net: str, digit: int, fixed_features: list[int], witness: list[float]) -> dict:
    """Marabou's *sat* witness against smug's ``E``, in exact arithmetic: how far it lies outside the
    box of ``E`` (float64, 0 inside) and the smallest exact margin ``logit[t] - logit[j] - delta`` at the
    witness moved into the box (float32 values inside the exact box).  ``counterexample`` is True
    only when that margin is <= 0: then smug's "robust" would be wrong."""
    from smug.pipeline.robust import RobustConfig, robust_query
    from smug.solver.robust import exact_margins

    model = _model(net)
    query = robust_query(model, mnist_test_images()[digit].reshape(model.input_shape).astype(np.float64), RobustConfig(epsilon=EPSILON))
    fixed = np.zeros(query.n_vars, bool)
    fixed[fixed_features] = True
    v = np.asarray(witness, np.float64)
    lo, hi = query.outer_box(fixed)
    lo32, hi32 = query.inner_box32(fixed)
    inside = np.clip(v.astype(np.float32), lo32, hi32).astype(np.float64)
    margin = float(min(exact_margins(query.problem, inside)))
    return {"outside": float(np.max(np.maximum(v - hi, lo - v).clip(min=0.0))), "margin": margin,
            "counterexample": margin <= 0}


def _med(values) -> str:
    values = list(values)
    return f"{statistics.median(values):.1f}" if values else "-"


def _budgets(records: dict[str, dict], args) -> str:
    """How the written records' time was bounded (from the records: ``--budget`` is kept in each)."""
    budgets = sorted({r.get("budget") for r in records.values() if r["net"] in args.nets}, key=str)
    if budgets == [None]:
        return (f"smug's subset timeout {args.subset_timeout:g} s, cardinality {args.card_timeout:g} s more "
                "(seeded with the subset answer)")
    return ("one budget per digit for both of smug's modes (the subset search, then the cardinality search "
            f"seeded with it, one deadline as `--mode cardinality`): {', '.join(f'{b:g} s' for b in budgets if b)}")


def _replay(smug: dict[str, dict], key: str, check: dict) -> dict | None:
    """:func:`replay_witness` of a *sat* check (None otherwise, or without a witness)."""
    if check.get("code") != "sat" or not check.get("witness"):
        return None
    _, mode, net, digit = key.split("/")
    return replay_witness(net, int(digit), smug[f"{net}/{digit}"][mode]["fixed"], check["witness"])


def _witness_summary(checks: list[dict]) -> str:
    outside = max(c["replay"]["outside"] for c in checks)
    margins = [c["replay"]["margin"] for c in checks]
    where = "inside the box" if outside == 0 else f"up to {outside:.1e} outside the box (moved inside it)"
    return (f"witnesses {where} keep the class, exact margin {min(margins):.1e} to {max(margins):.1e}: Marabou's "
            "float tolerance")


def stage_write(args) -> None:
    smug, mar = _done(STORE), _done(MARABOU_STORE)
    rows, per_digit = [], []
    runs = _runs(STORE)
    commits = {r.get("commit") or "?" for r in runs if r["net"] in args.nets}
    groups = [(net, code) for net in args.nets for code in sorted({r.get("commit") or "?" for r in runs
                                                                      if r["net"] == net})]
    for net, code in groups:
        recs = [r for r in runs if r["net"] == net and (r.get("commit") or "?") == code]
        several = sum(n == net for n, _ in groups) > 1  # the net's digits ran on several commits: rows each
        net_label = f"{net} ({code})" if several else net
        sub = [r["subset"] for r in recs]
        card = [r["cardinality"] for r in recs]
        verix = [mar[f"verix/{net}/{r['digit']}"] for r in recs if f"verix/{net}/{r['digit']}" in mar]
        digits = {str(r["digit"]) for r in recs}
        checks = [mar[k] | {"replay": _replay(smug, k, mar[k])} for k in mar
                  if k.startswith("check/") and f"/{net}/" in k and k.rsplit("/", 1)[1] in digits]
        rows.append([net_label, len(recs), "smug subset", _med(s["size"] for s in sub), _med(s["seconds"] for s in sub),
                     _med(s["cpu"] for s in sub),
                     f"{sum(s['status'] == 'subset-minimal' for s in sub)}/{len(sub)} subset-minimal, "
                     f"{sum(s['kept_replay'] for s in sub)}/{len(sub)} replayed",
                     sum(s["unresolved"] > 0 for s in sub)])
        rows.append([net_label, len(recs), "smug cardinality", _med(c["size"] for c in card),
                     _med(c["seconds"] for c in card), _med(c["cpu"] for c in card),
                     f"{sum(c['status'] == 'optimal' for c in card)}/{len(card)} optimal, lower bound median "
                     f"{_med(c['lower_bound'] for c in card)}", sum(c["status"] != "optimal" for c in card)])
        if verix:
            rows.append([net_label, len(verix), "VeriX (Marabou, a query per pixel and class)", _med(v["size"] for v in verix),
                         _med(v["seconds"] for v in verix), _med(v["cpu"] for v in verix),
                         f"{_med(v['calls'] for v in verix)} Marabou calls", sum(v["timed_out"] for v in verix)])
        if checks:
            sat = [c for c in checks if c["code"] == "sat"]
            false_sat = [c for c in sat if c["replay"] is not None and not c["replay"]["counterexample"]]
            rows.append([net_label, len(checks), "Marabou re-check of smug's E", "-", _med(c["seconds"] for c in checks),
                         "-", f"{sum(c['code'] == 'unsat' for c in checks)}/{len(checks)} unsat (robust); "
                         f"{len(sat)} sat, of which {len(sat) - len(false_sat)} with a witness that is a counterexample "
                         "in exact arithmetic" + (f" (the others: {_witness_summary(false_sat)})" if false_sat else ""),
                         sum(c["code"] not in ("unsat", "sat") for c in checks)])
        for r in sorted(recs, key=lambda r: r["digit"]):
            v = mar.get(f"verix/{net}/{r['digit']}", {})
            sub, card = r["subset"], r["cardinality"]
            per_digit.append([net_label, r["digit"], f"{sub['size']}" + ("" if sub["status"] == "subset-minimal" else "*"),
                              f"{card['size']} >= {card['lower_bound']}" + (" opt" if card["status"] == "optimal" else ""),
                              v.get("size", "-"), f"{sub['cpu']:.1f}", f"{card['cpu']:.1f}",
                              f"{v['cpu']:.1f}" if v else "-", f"{sub['seconds']:.1f}",
                              f"{v['seconds']:.1f}" if v else "-"])
    head = ["network", "digits", "method", "size (median)", "wall s (median)", "CPU s (median)", "proven",
            "timeouts / not proven"]
    body = "\n".join([
        f"Epsilon {EPSILON} (L-inf, clipped to [0, 1]), one feature per pixel, predicted class; {_budgets(smug, args)}"
        f"{', in CPU seconds (--cpu-clock)' if args.cpu_clock else ''}. "
        f"Machine: 2 cores shared with other engineers, `{uptime()}` when written.", "",
        *table(head, rows), "",
        "Per digit (sizes in pixels; `*`: subset search timed out, E robust but not every pixel justified; "
        "`opt`: proven cardinality-minimal; `-`: VeriX not run on that digit):", "",
        *table(["network", "digit", "smug subset", "smug cardinality >= bound", "VeriX", "subset CPU s",
                "cardinality CPU s (more)", "VeriX CPU s", "subset wall s", "VeriX wall s"], per_digit), "",
        "CPU seconds are the process's own (`time.process_time`, Marabou's solver runs in-process). `proven`: "
        "subset-minimal means every pixel of E has a counterexample (exact replay and onnxruntime) and E itself is "
        "proven robust (rigorous bounds or LP branch and bound with safe dual bounds); optimal means the "
        "cardinality lower bound (bounds over the fixing polytope, hitting sets certified by SAT, knapsack cuts "
        "from every counterexample's direction certified by exact LP duality) meets the size. A timeout returns "
        "the best robust E found, not proven minimal. Code: " + ", ".join(sorted(commits)) + "."])
    title = "Robust explanations against VeriX (issue 30)"
    if args.section:  # a partial rerun gets its own section (keyed by its title): the full table stays as written
        publish(args, None, f"{title}: {args.section}", invocation("robust"), body)
    else:
        publish(args, "robust_issue30", title, invocation("robust"), body)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--stage", choices=("smug", "marabou", "write", "all"), default="all")
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--digits", type=int, default=100, help="digits [--start, --digits) of the test split")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--subset-timeout", type=float, default=120.0)
    ap.add_argument("--card-timeout", type=float, default=60.0)
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds per digit for both modes together (one deadline, as `--mode cardinality`)")
    ap.add_argument("--cpu-clock", action="store_true", help="budgets in CPU seconds of this process, not wall")
    ap.add_argument("--section", default=None,
                    help="write: publish into a section of this name (a partial rerun) instead of the full table's")
    ap.add_argument("--marabou-python", default=None)
    ap.add_argument("--verix-digits", type=int, default=5)
    ap.add_argument("--verix-timeout", type=float, default=1800.0)
    ap.add_argument("--check-modes", nargs="+", default=["subset", "cardinality"], choices=["subset", "cardinality"],
                    help="--stage marabou: whose answers Marabou re-checks")
    ap.add_argument("--no-checks", dest="checks", action="store_false",
                    help="--stage marabou: run VeriX only, no re-check of smug's answers")
    add_doc_args(ap)
    args = ap.parse_args()
    if args.stage in ("smug", "all"):
        stage_smug(args)
    if args.stage == "marabou" or (args.stage == "all" and args.marabou_python):
        stage_marabou(args)
    if args.stage in ("write", "all"):
        stage_write(args)


if __name__ == "__main__":
    main()
