"""Compatibility matrix (issue 26): torchvision classifiers (``weights=None``, nothing downloaded)
x exporters (TorchScript at opsets 13 and 17, dynamo at its default opset) x batch (fixed 1,
dynamic), each explained by ``smug explain`` with SMUG and the baselines, as a new user would.

Every row runs the ``smug explain`` command line once per method in one child process (the command
line's own ``main``, so the interpreter's start and the imports are paid once a row; a timeout per
row) and records ``ok`` with its seconds, the one ``smug: error:`` line of a refusal, or ``FAIL``
with the last line of anything else (a traceback is a failure).  The table goes to docs/compat.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from smug.bench.common import ROOT, add_doc_args, invocation, load_average, parser, publish, table

ARCHS = ("resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "efficientnet_b0", "vgg11_bn", "densenet121",
         "squeezenet1_1", "shufflenet_v2_x0_5", "regnet_y_400mf", "mnasnet0_5", "googlenet", "inception_v3",
         "convnext_tiny", "vit_b_16")
EXPORTERS = ("ts13", "ts17", "dynamo")  # TorchScript exporter at opset 13 / 17; the dynamo exporter's default
BATCHES = ("1", "dynamic")
METHODS = ("smug", "gradient", "integrated_gradients", "gradcam", "occlusion", "rise")
DOC = ROOT / "docs" / "compat.md"
EXPORT_FAILURE = "export: "  # a row's cells when torch's exporter fails on the architecture
PREPROCESS = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}  # torchvision's ImageNet statistics
IMAGE = ROOT / "models" / "assets" / "siamese-cat.jpg"
#: the smallest input an architecture takes: inception_v3's stem needs 75 px; vgg11_bn's adaptive pool
#: to 7x7 exports with the TorchScript exporter only from a multiple of 7 (its features are 1/32 of the input)
MIN_SIZE = {"inception_v3": 75, "vgg11_bn": 224}


def arch_size(arch: str, size: int) -> int:
    """The input size a row of ``arch`` runs at: ``size``, or the architecture's :data:`MIN_SIZE`."""
    return max(size, MIN_SIZE.get(arch, 0))


@dataclass(frozen=True)
class Cell:
    status: str  # "ok", "refused" (one smug: error: line) or "FAIL"
    seconds: float
    line: str  # the refusal or failure line ("" when ok)

    def to_json(self) -> dict:
        return {"status": self.status, "seconds": round(self.seconds, 2), "line": self.line}

    def markdown(self) -> str:
        if self.status == "ok":
            return f"ok {self.seconds:.1f} s"
        return f"{self.status}: {self.line.replace('|', '/')}"


def network(arch: str, size: int):
    """``torchvision.models.<arch>(weights=None)`` in eval mode, seeded (random weights)."""
    import torch
    import torchvision

    torch.manual_seed(0)
    extra = {"image_size": size} if arch.startswith("vit_") else {}
    extra.update({"aux_logits": False, "init_weights": True} if arch in ("googlenet", "inception_v3") else {})
    return getattr(torchvision.models, arch)(weights=None, **extra).eval()


def export(arch: str, exporter: str, batch: str, size: int, path: Path) -> Path:
    """Export ``network(arch, size)`` to ``path`` with ``exporter`` (``ts13``, ``ts17``, ``ts``: the
    TorchScript exporter at that opset or its default; ``dynamo``) and a fixed batch of 1 or a dynamic one."""
    import torch

    net = network(arch, size)
    x = torch.zeros(1, 3, size, size)
    names = {"input_names": ["input"], "output_names": ["logits"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            dyn = {"dynamic_shapes": ({0: torch.export.Dim("batch", min=1, max=1024)},)} if batch == "dynamic" else {}
            torch.onnx.export(net, (x,), str(path), dynamo=True, verbose=False, **names, **dyn)
        else:
            opset = {} if exporter == "ts" else {"opset_version": int(exporter[2:])}
            dyn = {"dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}}} if batch == "dynamic" else {}
            torch.onnx.export(net, x, str(path), dynamo=False, **names, **opset, **dyn)
    return path


def preprocess(size: int) -> str:
    """The ``--preprocess`` of a torchvision classifier at input size ``size``."""
    return json.dumps({"crop": size, "resize": round(size * 256 / 224), **PREPROCESS})


def explain_args(model: Path, method: str, size: int, timeout: float, out: Path) -> list[str]:
    """``smug explain``'s arguments for the demo photo on ``model`` with ``method``."""
    return ["explain", str(IMAGE), "--model", str(model), "--method", method, "--preprocess", preprocess(size),
            "--timeout", str(timeout), "--out", str(out), "--quiet"]


def classify(code: int, stdout: str, stderr: str, seconds: float) -> Cell:
    """A cell from the command's exit status and output: ``ok`` (an answer with a status), ``refused``
    (exit 2 and one ``smug: error:`` line) or ``FAIL`` (anything else: a traceback, a wrong status)."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if code in (0, 1) and "Traceback" not in stderr:
        status = json.loads(stdout).get("status")
        return Cell("ok", seconds, "") if status in ("optimal", "feasible", "map") else Cell("FAIL", seconds, status)
    if code == 2 and len(lines) == 1 and lines[0].startswith("smug: error:"):
        return Cell("refused", seconds, lines[0][len("smug: error: "):])
    return Cell("FAIL", seconds, lines[-1] if lines else f"exit {code}")


def run_cell(model: Path, method: str, size: int, timeout: float, out: Path) -> Cell:
    """``smug explain`` of the demo photo on ``model`` with ``method`` in a child process."""
    cmd = [sys.executable, "-m", "smug", *explain_args(model, method, size, timeout, out)]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * 4 + 900)
    except subprocess.TimeoutExpired:
        return Cell("FAIL", time.perf_counter() - t0, "no answer in time")
    return classify(r.returncode, r.stdout, r.stderr, time.perf_counter() - t0)


def run_row(model: Path, methods, size: int, timeout: float, out: Path, smug_timeout: float | None = None
            ) -> dict[str, Cell]:
    """Every method's cell on ``model`` in one child process (:func:`row_child`: the command line's
    ``main`` once per method, so the interpreter's start and the imports are paid once per row)."""
    smug_timeout = timeout if smug_timeout is None else smug_timeout
    cmd = [sys.executable, "-m", "smug.bench.compat", "--row-child", str(model), "--methods", ",".join(methods),
           "--size", str(size), "--timeout", str(timeout), "--smug-timeout", str(smug_timeout), "--out", str(out)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=(max(timeout, smug_timeout) * 4 + 300) * len(methods))
        stdout = r.stdout
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    return row_cells(stdout, methods)


def row_cells(stdout: str, methods) -> dict[str, Cell]:
    """The cells :func:`row_child` printed (one JSON line each); a method without one failed."""
    cells = {}
    for line in stdout.splitlines():
        if line.startswith("{"):
            c = json.loads(line)
            method = c.pop("method")
            cells[method] = Cell(**c)
    return {m: cells.get(m, Cell("FAIL", 0.0, "no answer in time (or the process died)")) for m in methods}


def row_child(model: Path, methods, size: int, timeout: float, out: Path, smug_timeout: float | None = None) -> None:
    """:func:`run_row`'s child: ``smug explain`` by the command line's own ``main`` per method (``--timeout``
    ``timeout``; SMUG's ``smug_timeout`` when given), its output captured; one JSON line per cell on stdout."""
    import contextlib
    import io
    import traceback

    from smug.clients.cli import main as cli

    for method in methods:
        stdout, stderr = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                seconds = smug_timeout if method == "smug" and smug_timeout is not None else timeout
                cli(explain_args(model, method, size, seconds, out / method))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # a traceback: the failure this matrix looks for
                traceback.print_exc()
                code = 1
        cell = classify(code, stdout.getvalue(), stderr.getvalue(), time.perf_counter() - t0)
        print(json.dumps({"method": method, **cell.to_json()}), flush=True)


def run_matrix(rows_wanted, methods, size: int, timeout: float, work: Path, log: Path | None = None,
               smug_timeout: float | None = None) -> list[tuple]:
    """One row per (arch, exporter, batch) of ``rows_wanted`` at :func:`arch_size`: its cells by method
    (an export failure fills the row).  With ``log`` (JSON lines), each row is appended as it finishes
    and the rows already there are kept, not run again (a run stopped half-way resumes)."""
    done = read_log(log, methods) if log is not None and log.is_file() else {}
    rows = []
    for arch, exporter, batch in rows_wanted:
        if (arch, exporter, batch) in done:
            rows.append((arch, exporter, batch, done[arch, exporter, batch]))
            continue
        px = arch_size(arch, size)
        path = work / f"{arch}-{exporter}-{batch}-{px}.onnx"
        try:
            export(arch, exporter, batch, px, path)
        except Exception as exc:  # the exporter's own failure: reported in the row, not smug's
            cells = {m: Cell("FAIL", 0.0, f"{EXPORT_FAILURE}{type(exc).__name__}") for m in methods}
        else:
            cells = run_row(path, methods, px, timeout, work / "out", smug_timeout)
        path.unlink(missing_ok=True)
        rows.append((arch, exporter, batch, cells))
        if log is not None:
            with open(log, "a") as f:
                f.write(json.dumps({"arch": arch, "exporter": exporter, "batch": batch, "size": px,
                                    "cells": {m: c.to_json() for m, c in cells.items()}}) + "\n")
        print(arch, exporter, batch, {m: c.markdown() for m, c in cells.items()}, file=sys.stderr, flush=True)
    return rows


def read_log(log: Path, methods) -> dict[tuple, dict[str, Cell]]:
    """The rows of a :func:`run_matrix` log that have a cell for every one of ``methods``."""
    rows = {}
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if all(m in r["cells"] for m in methods):
            rows[r["arch"], r["exporter"], r["batch"]] = {m: Cell(**r["cells"][m]) for m in methods}
    return rows


def gradient_path(path: Path) -> list[str]:
    """The gradient path of one exported model, in process: the path that
    :func:`smug.models.torch_backend.convert` took, its max abs logit error against onnxruntime on a
    random input, the first layer SMUG encodes (or its refusal) and the conversion's seconds."""
    import numpy as np

    from smug.baselines.gradients import fast_torch
    from smug.encoders.first_layer import UnsupportedModel, find_first_layer
    from smug.models.runtime import OnnxModel

    model = OnnxModel.load(path)
    t0 = time.perf_counter()
    try:
        fast_torch(model)
    except Exception as exc:  # reported in the row
        return ["FAIL", str(exc).splitlines()[0][:160], "", f"{time.perf_counter() - t0:.1f} s"]
    seconds = time.perf_counter() - t0
    x = np.random.default_rng(0).normal(size=model.input_shape).astype(np.float32)
    report = model.gradient_paths(x)["whole model"]
    try:
        layer = find_first_layer(model)
        first = f"{layer.kind} / {layer.activation}"
    except UnsupportedModel as exc:
        first = f"refused: {exc}"
    return [report["path"], f"{report['max_abs_logit_error']:.1e}", first, f"{seconds:.1f} s"]


def gradient_paths(rows_wanted, size: int, work: Path) -> str:
    """Table of :func:`gradient_path` for each (arch, exporter, batch)."""
    out = []
    for arch, exporter, batch in rows_wanted:
        px = arch_size(arch, size)
        path = work / f"{arch}-{exporter}-{batch}-{px}.onnx"
        try:
            export(arch, exporter, batch, px, path)
        except Exception as exc:  # the exporter's own failure
            cells = [f"{EXPORT_FAILURE}{type(exc).__name__}", "", "", ""]
        else:
            cells = gradient_path(path)
        out.append([arch, exporter, batch, *cells])
        print(*out[-1], file=sys.stderr, flush=True)
    return "\n".join(table(["architecture", "exporter", "batch", "path", "max abs logit error", "first layer",
                             "conversion"], out))


def markdown(rows, methods, size: int) -> str:
    body = table(["architecture", "exporter", "batch", "size", *methods],
                 [[a, e, b, arch_size(a, size), *(cells[m].markdown() for m in methods)] for a, e, b, cells in rows])
    medians = []
    for m in methods:
        secs = [cells[m].seconds for *_, cells in rows if cells[m].status == "ok"]
        medians.append(f"{statistics.median(secs):.1f} s" if secs else "-")
    failed = [c for *_, cells in rows for c in cells.values() if c.status == "FAIL"]
    exports = sum(c.line.startswith(EXPORT_FAILURE) for c in failed)
    return "\n".join([*body, "", *table(["median (ok cells)", *methods], [["", *medians]]), "",
                      f"Failures (tracebacks or wrong answers): {len(failed) - exports}. "
                      f"Cells of rows torch could not export (smug never ran): {exports}. "
                      f"Load average after the run: {load_average()}."])


def main(argv: list[str] | None = None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--archs", default=",".join(ARCHS), help="comma-separated torchvision architectures")
    ap.add_argument("--exporters", default=",".join(EXPORTERS), help="comma-separated: ts13, ts17, ts, dynamo")
    ap.add_argument("--batches", default=",".join(BATCHES), help="comma-separated: 1, dynamic")
    ap.add_argument("--rows", default=None, metavar="ARCH:EXPORTER:BATCH,...",
                    help="only these rows (instead of --archs x --exporters x --batches)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated smug methods")
    ap.add_argument("--size", type=int, default=224,
                    help="input size in pixels (at least each architecture's smallest, MIN_SIZE)")
    ap.add_argument("--timeout", type=float, default=20.0, help="smug's --timeout per cell")
    ap.add_argument("--smug-timeout", type=float, default=None, help="--timeout of the SMUG cells (default: --timeout)")
    ap.add_argument("--log", type=Path, default=None,
                    help="JSON-lines file: each finished row is appended; rows already in it are not run again")
    ap.add_argument("--gradient-paths", action="store_true",
                    help="only the gradient path of each row (in process: path, logit error, first layer)")
    ap.add_argument("--row-child", type=Path, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    add_doc_args(ap)
    ap.set_defaults(doc=DOC)
    a = ap.parse_args(argv)
    split = lambda s: [v for v in s.split(",") if v]  # noqa: E731
    methods = split(a.methods)
    if a.row_child is not None:
        row_child(a.row_child, methods, a.size, a.timeout, a.out, a.smug_timeout)
        return 0
    wanted = ([tuple(r.split(":")) for r in split(a.rows)] if a.rows else
              [(x, e, b) for x in split(a.archs) for e in split(a.exporters) for b in split(a.batches)])
    if a.gradient_paths:
        with tempfile.TemporaryDirectory() as tmp:
            body = gradient_paths(wanted, a.size, Path(tmp))
        publish(a, "compat_gradient_paths", "Gradient paths", invocation("compat"), body)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_matrix(wanted, methods, a.size, a.timeout, Path(tmp), a.log, a.smug_timeout)
    publish(a, "compat", "Compatibility matrix", invocation("compat"), markdown(rows, methods, a.size))
    return int(any(c.status == "FAIL" for *_, cells in rows for c in cells.values()))


if __name__ == "__main__":
    sys.exit(main())
