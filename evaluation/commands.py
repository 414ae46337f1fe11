"""The ``evaluate`` and ``report`` subcommands of ``smug`` (argparse): :func:`add_commands` adds
them to the CLI's subparsers, :func:`run_command` runs the parsed arguments."""

from __future__ import annotations

import json
from pathlib import Path

from smug.evaluation.store import EvalConfig

COMMANDS = ("evaluate", "report")


def add_commands(sub) -> None:
    """The ``evaluate`` and ``report`` subcommands of ``smug``."""
    ev = sub.add_parser("evaluate", help="score methods on images (LSC, Win%%, sparsity, ...), resumable")
    ev.add_argument("images", nargs="+", help="image files")
    ev.add_argument("--model", default="efficientnet-lite0", help="zoo image model")
    ev.add_argument("--methods", default="smug,smug_base,ig,gradcam,centerbox,maxbox",
                    help="comma-separated: smug, smug_base, smug_keep (SMUG in keep-class mode), optbox and any "
                         "baseline name (ig, gradcam, ...)")
    ev.add_argument("--db", default="smug-eval.sqlite", help="the SQLite store (re-runs skip finished images)")
    for name, kind, what in (("top_k", int, "IG-ranked first-layer neurons kept"),
                             ("gamma", float, "masked > gamma * original"), ("window", int, "mask block size"),
                             ("timeout", float, "SMUG solver time limit per image")):
        ev.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                        help=f"{what} (default {getattr(EvalConfig, name)})")
    ev.add_argument("--thresholds", type=int, default=100, help="LSC: thresholds swept per map")
    ev.add_argument("--stopping", action="store_true", help="also paper 000's stopping criterion (size, time)")
    ev.add_argument("--insertion-deletion", action="store_true", help="also insertion/deletion AUCs")
    ev.add_argument("--lsc-uint8", action="store_true",
                    help="LSC crops min-max normalised and rounded to uint8 first, as the reference code does")
    ev.add_argument("--workers", type=int, default=None,
                    help="run the per-image work on an embedded Dask cluster of this many process workers")
    ev.add_argument("--scheduler", default=None, help="run it on a Dask cluster: the scheduler's address (tcp://HOST:8786)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    rp = sub.add_parser("report", help="HTML page (tables and pictures) from a smug evaluate store")
    rp.add_argument("--db", default="smug-eval.sqlite")
    rp.add_argument("--out", default="smug-report.html")
    rp.add_argument("--methods", default=None, help="comma-separated subset and order (default: all in the store)")
    rp.add_argument("--max-images", type=int, default=24, help="image rows shown")


def run_command(a) -> int:
    """Run a parsed ``evaluate`` or ``report`` command; prints its JSON result.  Bad arguments raise ValueError."""
    from smug.evaluation.runner import check_methods

    if a.command == "report":
        from smug.evaluation.report import write_report

        methods = check_methods(a.methods.split(",")) if a.methods else None
        out = write_report(a.db, a.out, methods, a.max_images)
        print(json.dumps({"out": str(out)}))
        return 0
    from smug.evaluation.runner import evaluate, smug_request

    for p in a.images:
        if not Path(p).is_file():
            raise ValueError(f"image not found: {p}")
    if a.thresholds < 2:
        raise ValueError(f"need --thresholds >= 2, got {a.thresholds}")
    smug = {k: getattr(a, k) for k in ("top_k", "gamma", "window", "timeout") if getattr(a, k) is not None}
    config = EvalConfig(model=a.model, n_thresholds=a.thresholds, stopping=a.stopping,
                        insertion_deletion=a.insertion_deletion, lsc_uint8=a.lsc_uint8, **smug)
    smug_request(Path(a.images[0]), config)  # SMUG's parameters checked as every request's, before any work
    if a.workers is not None and a.scheduler is not None:
        raise ValueError("give either --workers (an embedded cluster) or --scheduler, not both")
    if a.workers is not None and a.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {a.workers}")
    if a.scheduler is not None:
        from smug.farm.cluster import check_scheduler

        check_scheduler(a.scheduler)  # before the store is written
    result = evaluate(a.images, a.methods.split(","), a.db, config, progress=not a.quiet, workers=a.workers,
                      scheduler=a.scheduler)
    print(json.dumps(result))
    return 0
