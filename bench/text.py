"""SMUG, SMUG_base, IG and SIS on the text CNN over real movie-review test snippets.

    nice -n 10 python bench/text.py --snippets 200     # resumable, writes docs/benchmarks.md

The snippets are the first ``--snippets`` of the model's held-out test split
(``smug.models.train_text_cnn.load_split``).  Each is explained by
:func:`smug.clients.text.explain_text` (k = 100, gamma = 0, bias-free form, solver
in a child process) with all four rows; per method the median sparsity (selected /
non-padding words), sufficiency ``s(x) - s(selected only)`` (lower is better),
comprehensiveness ``s(x) - s(x without selected)`` (higher is better) and
wall time.  ``s`` is the rating for texts rated >= 0.5, else 1 - rating.
Times: SMUG = IG + encoding + solve + certificate; SMUG_base = IG + encoding;
one torch thread.  Per-snippet results go to ``out/text-bench.jsonl``; a re-run
skips the snippets already there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import write_section  # noqa: E402  (bench/ is a folder of scripts)

ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "out" / "text-bench.jsonl"
METHODS = ("smug", "smug_base", "text_ig", "text_sis")
LABELS = {"smug": "SMUG", "smug_base": "SMUG_base", "text_ig": "IG (embeddings)", "text_sis": "SIS (tokens)"}


def model_mse() -> dict:
    from smug.models.text_cnn import ratings, tokenizer_for
    from smug.models.train_text_cnn import load_split
    from smug.models.zoo import load_model

    model, _ = load_model("text-cnn")
    tok = tokenizer_for("text-cnn")
    split = load_split()
    out = {}
    for part in ("validation", "test"):
        texts, y = split[part]
        out[part] = float(np.mean((ratings(model, np.stack([tok(t).ids for t in texts])) - y) ** 2))
        out[f"{part}_mean_baseline"] = float(np.mean((split["train"][1].mean() - y) ** 2))
    return out


def run(n: int, timeout: float) -> list[dict]:
    from smug.clients.text import explain_text
    from smug.models.train_text_cnn import load_split

    texts, y = load_split()["test"]
    STORE.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if STORE.exists():
        for line in STORE.read_text().splitlines():
            r = json.loads(line)
            done[r["index"]] = r
    explain_text("warm up the model and its torch copy", methods=("smug",))  # one-off conversions
    with STORE.open("a") as f:
        for i in range(min(n, len(texts))):
            if i in done:
                continue
            e = explain_text(texts[i], timeout=timeout)
            r = {"index": i, "n_words": e.n_words, "rating": e.rating, "label": float(y[i]), "status": e.status,
                 "objective": e.objective, "certificate": e.certificate["valid"], "direction": e.direction,
                 "truncated": e.truncated, "total_s": e.timings["total"],
                 "methods": {row.method: {**row.measures, "seconds": row.seconds} for row in e.rows}}
            f.write(json.dumps(r) + "\n")
            f.flush()
            done[i] = r
            print(f"{i}: {e.status} {e.objective}/{e.n_words} words, {e.timings['total']:.2f} s", flush=True)
    return [done[i] for i in sorted(done) if i < n]


def med(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def report(rows: list[dict], mse: dict, n: int, load: str) -> str:
    status = {s: sum(r["status"] == s for r in rows) for s in ("optimal", "feasible", "unknown", "infeasible")}
    lines = [
        f"Command: `nice -n 10 python bench/text.py --snippets {n}` (resumable; store `out/text-bench.jsonl`). "
        f"Load at the time (`uptime`): {load}.",
        "",
        f"Model `text-cnn` (Embedding(100) -> Conv1d(128, width 3) -> ReLU -> max-pool -> dense -> sigmoid) on "
        f"the vader movie-review snippets, rating rescaled to [0, 1]: validation MSE **{mse['validation']:.4f}**, "
        f"test MSE **{mse['test']:.4f}**; a constant mean-rating predictor gets {mse['validation_mean_baseline']:.4f}"
        f" / {mse['test_mean_baseline']:.4f} (paper 003: 0.032 on beer aroma).",
        "",
        f"{len(rows)} test snippets (median {med([r['n_words'] for r in rows]):.0f} words), k = 100, gamma = 0, "
        f"bias-free form, masked word = zero embedding. SMUG status: "
        + ", ".join(f"{k} {v}" for k, v in status.items() if v)
        + f"; certificates valid: {sum(r['certificate'] for r in rows)} of {len(rows)}.",
        "",
        "| method | median sparsity | median sufficiency (lower better) | median comprehensiveness (higher better) "
        "| median time (s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in METHODS:
        ms = [r["methods"][m] for r in rows if m in r["methods"]]
        lines.append(f"| {LABELS[m]} | {med([x['sparsity'] for x in ms]):.3f} | {med([x['sufficiency'] for x in ms]):.3f} "
                     f"| {med([x['comprehensiveness'] for x in ms]):.3f} | {med([x['seconds'] for x in ms]):.3f} |")
    lines += [
        "",
        "Selected words: the SMUG mask; SMUG_base's receptive-field words; IG's words whose signed score supports "
        "the explained direction; SIS's first (most important) sufficient subset (threshold: 90 % of the score gain "
        "over the empty text). Sufficiency and comprehensiveness replace dropped words by the padding token in "
        "place (the zero embedding). `s` is the rating for texts rated >= 0.5, else 1 - rating.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snippets", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing the docs")
    args = ap.parse_args(argv)
    os.environ.setdefault("SMUG_TORCH_THREADS", "1")
    t0 = time.perf_counter()
    rows = run(args.snippets, args.timeout)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()
    text = report(rows, model_mse(), args.snippets, f"load average {load}")
    print(text)
    print(f"bench wall time {time.perf_counter() - t0:.0f} s")
    if not args.no_write:
        write_section("text", text)


if __name__ == "__main__":
    main()
