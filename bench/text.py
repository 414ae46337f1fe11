"""SMUG, SMUG_base, IG and SIS on the text CNN over real movie-review test snippets.

    nice -n 10 python -m smug.bench.text --snippets 200     # resumable, writes docs/benchmarks.md

The snippets are the first ``--snippets`` of the model's held-out test split
(:func:`smug.bench.datasets.snippets_split` of ``--data``).  Each is explained by
:func:`smug.pipeline.explain` on ``text-cnn`` (k = 100, gamma = 0, bias-free form, solver
in a child process) with all four rows; per method the median sparsity (selected /
non-padding words), sufficiency ``s(x) - s(selected only)`` (lower is better),
comprehensiveness ``s(x) - s(x without selected)`` (higher is better) and
wall time.  ``s`` is the rating for texts rated >= 0.5, else 1 - rating.
Times: SMUG = IG + encoding + solve + certificate; SMUG_base = IG + encoding;
one torch thread.  Per-snippet results go to ``out/text-bench.jsonl``; a re-run
skips the snippets already there.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

from smug.bench.common import OUT, add_doc_args, invocation, load_average, parser, publish, table
from smug.bench.datasets import SNIPPETS, snippets_split

STORE = OUT / "text-bench.jsonl"
METHODS = ("smug", "smug_base", "text_ig", "text_sis")
LABELS = {"smug": "SMUG", "smug_base": "SMUG_base", "text_ig": "IG (embeddings)", "text_sis": "SIS (tokens)"}


def model_mse(data: Path) -> dict:
    from smug.models.text_cnn import ratings, tokenizer_for
    from smug.models.zoo import load_model

    model, _ = load_model("text-cnn")
    tok = tokenizer_for("text-cnn")
    split = snippets_split(data)
    out = {}
    for part in ("validation", "test"):
        texts, y = split[part]
        out[part] = float(np.mean((ratings(model, np.stack([tok(t).ids for t in texts])) - y) ** 2))
        out[f"{part}_mean_baseline"] = float(np.mean((split["train"][1].mean() - y) ** 2))
    return out


def explain_text(text: str, **params):
    """The text explanation of ``text`` by the shipped text model."""
    from smug.pipeline import explain

    return explain(None, "text-cnn", text=text, **params)


def run(data: Path, n: int, timeout: float) -> list[dict]:
    texts, y = snippets_split(data)["test"]
    STORE.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if STORE.exists():
        for line in STORE.read_text().splitlines():
            r = json.loads(line)
            done[r["index"]] = r
    explain_text("warm up the model and its torch copy", rows=("smug",))  # one-off conversions
    with STORE.open("a") as f:
        for i in range(min(n, len(texts))):
            if i in done:
                continue
            e = explain_text(texts[i], timeout=timeout)
            t = e.text
            r = {"index": i, "n_words": len(t.words), "rating": t.rating, "label": float(y[i]), "status": e.status,
                 "objective": e.objective, "certificate": e.certificate["valid"], "direction": t.direction,
                 "truncated": t.truncated, "total_s": e.timings["total"],
                 "methods": {row.method: {**row.measures, "seconds": row.seconds} for row in t.rows}}
            f.write(json.dumps(r) + "\n")
            f.flush()
            done[i] = r
            print(f"{i}: {e.status} {e.objective}/{r['n_words']} words, {e.timings['total']:.2f} s", flush=True)
    return [done[i] for i in sorted(done) if i < n]


def med(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def report(rows: list[dict], mse: dict, load: str) -> str:
    """The section's body (after its command)."""
    status = {s: sum(r["status"] == s for r in rows) for s in ("optimal", "feasible", "unknown", "infeasible")}
    lines = [
        f"Resumable; store `out/text-bench.jsonl`. Load at the time: {load}.",
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
    ]
    cells = []
    for m in METHODS:
        ms = [r["methods"][m] for r in rows if m in r["methods"]]
        cells.append([LABELS[m], *(f"{med([x[k] for x in ms]):.3f}"
                                   for k in ("sparsity", "sufficiency", "comprehensiveness", "seconds"))])
    lines += table(["method", "median sparsity", "median sufficiency (lower better)",
                    "median comprehensiveness (higher better)", "median time (s)"], cells)
    lines += [
        "",
        "Selected words: the SMUG mask; SMUG_base's receptive-field words; IG's words whose signed score supports "
        "the explained direction; SIS's first (most important) sufficient subset (threshold: 90 % of the score gain "
        "over the empty text). Sufficiency and comprehensiveness replace dropped words by the padding token in "
        "place (the zero embedding). `s` is the rating for texts rated >= 0.5, else 1 - rating.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = parser(__doc__, first_line=True)
    ap.add_argument("--data", type=Path, default=SNIPPETS, help="the vader snippets file or folder (default: %(default)s)")
    ap.add_argument("--snippets", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=60.0)
    add_doc_args(ap)
    args = ap.parse_args(argv)
    os.environ.setdefault("SMUG_TORCH_THREADS", "1")
    t0 = time.perf_counter()
    rows = run(args.data, args.snippets, args.timeout)
    body = report(rows, model_mse(args.data), f"load average {load_average()}")
    publish(args, "text", None, invocation("text", prefix="nice -n 10"), body)
    print(f"bench wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
