"""``smug`` command line: explain, compare, dump, models, evaluate, report (``serve``: :mod:`smug.command`).

Every command builds :class:`~smug.pipeline.ExplainRequest` objects from its arguments
(so bad input fails in milliseconds, before any model is loaded) and runs them through
:func:`smug.pipeline.run`, or through a smug server with ``--server``.  Bad input prints
one ``smug: error: ...`` line and exits with status 2; nothing is written unless the
whole explanation succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from smug.events import Event, Improved, Stage
from smug.pipeline import DeadlineExceeded, ExplainRequest, Explanation, save_texts
from smug.pipeline.request import (BACKENDS, DEFAULT_TIMEOUT, InputError, ModelError, RequestError,
                                   method_parameters)

SERVER_HINT = "run the gRPC service: smug serve --help (also: python -m smug.server)"


def _method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", nargs="?", help="image file (default: the model's bundled demo input)")
    p.add_argument("--model", default="efficientnet-lite0", help="zoo name or path to an .onnx file")
    p.add_argument("--top-k", type=int, default=None, help="IG-ranked first-layer neurons to keep "
                   "(default 3000 for images, 100 for text)")
    p.add_argument("--gamma", type=float, default=None, help="masked > gamma * original, gamma in [0, 1)")
    p.add_argument("--window", type=int, default=None, help="mask block size in pixels (default 4; whole network 1)")
    p.add_argument("--form", choices=("linear", "affine"), default=None,
                   help="linear: bias-free W(x*m) > gamma W x (default); affine: with the bias (Eq. 3 literally)")
    p.add_argument("--baseline", type=float, default=None, help="masked-out value in model-input space")
    p.add_argument("--ig-steps", type=int, default=None, help="IG steps (default: adaptive by completeness)")
    p.add_argument("--target", type=int, default=None, help="class to explain (default: the prediction)")
    p.add_argument("--preprocess", default=None, metavar="JSON|FILE",
                   help='image files on your own model: {"crop": 224, "resize": 256, "mean": [...], "std": [...]} '
                        '(or offset/scale on 0-255 pixels, grayscale); an input may also be a .npy array')
    p.add_argument("--labels", default=None, metavar="FILE",
                   help="class names: one a line, or a JSON list (default: the zoo's; ImageNet's for any "
                        "1000-class model; else the class indices)")
    p.add_argument("--text", default=None, help="text models: the text to explain")
    p.add_argument("--text-file", default=None, help="text models: a UTF-8 file, one text per line")


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help names its default once: ``(default: X)`` is added only where a default is set
    (not None, a bare flag's False or an empty list) and the help does not already name one.  Descriptions
    and epilogs (examples) keep their lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or action.default == [] or "default" in text:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """``smug``'s parsers, every subcommand's included (argparse makes them of their parent's class)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def _parser() -> argparse.ArgumentParser:
    from smug import __version__

    parser = Parser(prog="smug", description="Provably minimal masks explaining a classifier")
    parser.add_argument("--version", action="version", version=f"smug {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("explain", help="minimal SMUG mask, saliency map and certificate")
    _method_args(ex)
    ex.add_argument("--method", default="smug",
                    help="smug (default), whole-network, robust, or a baseline: gradient, integrated_gradients, "
                         "gradcam, ...")
    ex.add_argument("--whole-network", action="store_true", help="same as --method whole-network (paper Appendix A)")
    ex.add_argument("--backend", choices=BACKENDS, default="auto",
                    help="first-layer: auto|highs|z3|portfolio; whole network: also enum")
    ex.add_argument("--delta", type=float, default=None, help="whole network: logit margin to keep, >= 0")
    ex.add_argument("--epsilon", type=float, default=None,
                    help="robust: L-inf radius of the perturbations of the pixels outside E (inf: the whole input "
                         "domain; default 0.05)")
    ex.add_argument("--mode", choices=("subset", "cardinality"), default=None,
                    help="robust: subset-minimal E (fast, the default) or cardinality-minimal (anytime, with a proven "
                         "lower bound)")
    ex.add_argument("--keep-class", action="store_true",
                    help="refine SMUG's constraints until the masked input keeps the decision (reports every step)")
    ex.add_argument("--min-confidence", type=float, default=None,
                    help="whole network or --keep-class: also keep softmax(target) (text: the explained score) "
                         ">= this")
    ex.add_argument("--timeout", type=float, default=None,
                    help=f"time limit in seconds (default {DEFAULT_TIMEOUT:g}): the solver's; a baseline "
                         "stops there too, with its map so far")
    ex.add_argument("--out", default="smug-out", help="output folder (result.json, mask/saliency/overlay PNGs)")
    ex.add_argument("--json-lines", action="store_true",
                    help="print one compact JSON object per explanation and line (the default for several "
                         "texts; one explanation: pretty JSON)")
    ex.add_argument("--quiet", action="store_true", help="no progress line on stderr (it is shown on a terminal)")
    ex.add_argument("--server", default=None, metavar="HOST:PORT",
                    help="explain on a smug server (smug serve), with a progress bar on a terminal; token from "
                         "$SMUG_TOKEN")
    cmp_ = sub.add_parser("compare", help="input and each method's map side by side, as PNG")
    _method_args(cmp_)
    cmp_.add_argument("--methods", default="smug,smug_base,gradient,integrated_gradients,gradcam",
                      help="comma-separated: smug, smug_base and any baseline name")
    cmp_.add_argument("--timeout", type=float, default=None,
                      help=f"time limit in seconds of each method (default {DEFAULT_TIMEOUT:g}; a baseline "
                           "stops there with its map so far)")
    cmp_.add_argument("--out", default="comparison.png", help="output PNG")
    cmp_.add_argument("--from", dest="reuse", action="append", default=[], metavar="RESULT",
                      help="reuse a saved explanation (smug explain's result.json or its --out folder) for the "
                           "panel of its method instead of computing it; repeatable")
    dmp = sub.add_parser("dump", help="write the encoding: smt2, wcnf, lp or mps")
    _method_args(dmp)
    dmp.add_argument("--out", default="smug-constraints.smt2", help="output file (.smt2, .wcnf, .lp, .mps)")
    from smug.debugging.commands import add_commands as debugging_commands, dump_arguments

    dump_arguments(dmp)  # --format, --bound, --method, --delta
    debugging_commands(sub)  # inspect, check
    sub.add_parser("models", help="list the model zoo")
    sub.add_parser("serve", help=SERVER_HINT, add_help=False)
    from smug.evaluation.commands import add_commands
    from smug.farm.commands import add_commands as farm_commands

    add_commands(sub)  # evaluate, report
    farm_commands(sub)  # farm run | status | export
    return parser


def _params(a: argparse.Namespace) -> dict:
    """The method parameters the user set (left out: the method's default); their names are the
    fields of the methods' config classes (:func:`smug.pipeline.request.method_parameters`)."""
    return {n: getattr(a, n) for n in method_parameters() if getattr(a, n, None) is not None}


def _method(a: argparse.Namespace) -> str:
    if getattr(a, "whole_network", False):
        if a.method not in ("smug", "whole-network"):
            raise RequestError("give --whole-network or --method, not both")
        return "whole-network"
    return a.method


def _texts(a: argparse.Namespace) -> list[str] | None:
    """The texts of --text / --text-file (None: no text given)."""
    if a.text is not None and a.text_file is not None:
        raise RequestError("give --text or --text-file, not both")
    if a.text_file is not None:
        if not Path(a.text_file).is_file():
            raise InputError(f"input file not found: {a.text_file}")
        from smug.pipeline.models import read_text_lines

        return read_text_lines(a.text_file)
    return None if a.text is None else [a.text]


def requests_of(a: argparse.Namespace, method: str | None = None) -> list[ExplainRequest]:
    """Every request the command line asks for, all validated before any runs."""
    method = method or _method(a)
    params = {**_params(a), "backend": getattr(a, "backend", "auto"), "timeout": getattr(a, "timeout", None),
              "target": a.target, "method": method, "keep_class": getattr(a, "keep_class", False),
              "preprocess": a.preprocess}
    texts = _texts(a)
    if texts is None:
        return [ExplainRequest.build(a.image, a.model, **params)]
    if a.image is not None:
        raise RequestError("give an image or a text, not both")
    out = []
    for i, t in enumerate(texts, start=1):
        try:
            out.append(ExplainRequest.build(None, a.model, text=t, **params))
        except (RequestError, InputError) as exc:
            raise RequestError(f"line {i}: {exc}" if len(texts) > 1 else str(exc)) from None
    return out


def labels_of(a: argparse.Namespace) -> list[str] | None:
    """The class names of ``--labels`` (read and checked against the model's class count before
    anything runs), or None."""
    if getattr(a, "labels", None) is None:
        return None
    from smug.pipeline.labels import model_labels

    return model_labels(a.model, a.labels)


def _relabeled(e: Explanation, names: list[str]) -> Explanation:
    from smug.pipeline.labels import relabeled

    return relabeled(e, names)


def summary(e: Explanation, out: str) -> dict:
    """The one JSON object the command prints for an explanation (local or remote)."""
    s = {"method": e.method, "status": e.status, "keeps_class": e.keeps_class,
         "masked_confidence": e.masked_confidence,
         "target": f"{e.target} {e.target_name} ({e.confidence:.3f})"}
    if e.text is not None:
        s.update(explains=e.ig.get("score"), words=f"{e.objective} of {len(e.text.words)}",
                 mask_words=e.selected_words("smug") if e.word_mask is not None else None,
                 truncated=e.text.truncated)
    elif e.status != "map":
        s.update(blocks=f"{e.objective} of {e.n_vars}", lower_bound=e.lower_bound,
                 base_blocks=None if e.base_mask is None else int(e.base_mask.sum()))
    s.update(certificate_valid=e.certificate.get("valid"), masked_prediction=e.masked_prediction,
             timings_s=e.timings, out=out)
    if e.origin:
        s.update(server=e.origin.get("server"), request_id=e.request_id)
    return s


def process_seconds() -> float | None:
    """Seconds since this process started (Linux ``/proc``; None elsewhere): the interpreter and imports
    before any stage runs, so that a CLI run's ``timings`` account for its whole wall time."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        return max(0.0, up - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _explain(a: argparse.Namespace) -> int:
    import dataclasses
    import time

    requests = requests_of(a)
    names = labels_of(a)
    if a.server:
        startup = process_seconds()  # interpreter start, imports, arguments: before the first stage
        explanations = [_remote(a, r) for r in requests]
    else:
        from smug.pipeline import run
        from smug.pipeline.runner import run as _imported  # noqa: F401 (the pipeline's modules, timed in startup)

        progress = None if a.quiet or not sys.stderr.isatty() else ProgressLine(sys.stderr)
        startup = process_seconds()
        explanations = [run(r, progress=progress) for r in requests]
        if progress is not None:
            progress.close()
    if names is not None:
        from smug.pipeline.labels import relabeled

        explanations = [relabeled(e, names) for e in explanations]
    if startup is not None:
        explanations[0] = dataclasses.replace(explanations[0],
                                              timings={"startup": round(startup, 4), **explanations[0].timings})
    for i, e in enumerate(explanations, start=1):
        where = "" if len(explanations) == 1 else f"line {i}: "
        for w in (*e.warnings, *lost_decision(e)):
            print(f"smug: warning: {where}{w}", file=sys.stderr)
    t_write = time.perf_counter()
    if explanations[0].text is not None:
        save_texts(explanations, a.out)
    else:
        explanations[0].save(a.out)
    write_s = round(time.perf_counter() - t_write, 4)
    shown = [summary(e, a.out) for e in explanations]
    wall = process_seconds()
    shown[0]["timings_s"] = {**shown[0]["timings_s"], "write": write_s,
                             **({} if wall is None else {"process_wall": round(wall, 4)})}
    if a.json_lines or len(shown) > 1:  # one summary per explanation and line: the shape of a single answer
        print("\n".join(json.dumps(s_, separators=(",", ":")) for s_ in shown))
    else:
        print(json.dumps(shown[0], indent=2))
    return 0 if all(e.status in ("optimal", "feasible", "map") for e in explanations) else 1


class ProgressLine:
    """Stage events and improved masks as one line on a terminal (``\\r``-updated)."""

    def __init__(self, out) -> None:
        import time

        self.out, self.clock, self.t0 = out, time.perf_counter, time.perf_counter()
        self.stage, self.mask = "", ""

    def __call__(self, ev: Event) -> None:
        if isinstance(ev, Stage) and not ev.finished:
            self.stage = ev.stage
        elif isinstance(ev, Improved):
            self.mask = f"  mask {ev.size}, proven >= {ev.lower_bound}"
        self.out.write(f"\r\x1b[Ksmug: {self.stage:<9s} {self.clock() - self.t0:6.1f} s{self.mask}")
        self.out.flush()

    def close(self) -> None:
        self.out.write("\r\x1b[K")
        self.out.flush()


def lost_decision(e: Explanation) -> list[str]:
    """One warning when the masked input loses the decision; it calls the mask minimal for SMUG's
    constraints only when that was proven (status ``optimal``)."""
    if e.keeps_class is not False:
        return []
    what = "its rating changes side" if e.text is not None else (
        f"class {e.target} ({e.target_name}) is no longer predicted")
    proven = ("it is minimal for SMUG's constraints" if e.status == "optimal" else
              f"it satisfies SMUG's constraints but is not proven minimal (status {e.status}, every mask has at "
              f"least {e.lower_bound})")
    return [f"the mask does not keep the decision: on the masked input {what} "
            f"(target confidence {e.masked_confidence:.3f}); {proven}, not sufficient "
            f"for the decision{'' if e.request.get('keep_class') else ' (try --keep-class)'}"]


def _remote(a: argparse.Namespace, request: ExplainRequest) -> Explanation:
    """The validated request, sent as it is (:func:`smug.proto.wire.request_to_proto`)."""
    from smug.clients.client import Client, progress_line
    from smug.proto.wire import WireError, request_to_proto

    if request.preprocess is not None:
        raise RequestError("--preprocess applies to local runs; a server reads images with its zoo models' own")
    with Client(a.server, token=os.environ.get("SMUG_TOKEN") or None) as client:
        try:
            message = request_to_proto(client.pb, request)
        except WireError as exc:
            raise RequestError(str(exc)) from None
        events = client.stream(message)
        if a.quiet or not sys.stderr.isatty():  # the bar is for a person at a terminal, not a log
            *_, last = events
            return last
        return progress_line(events)


def _compare(a: argparse.Namespace) -> int:
    from smug.common import write_atomic
    from smug.rendering.compare import comparison_png

    methods = [m for m in a.methods.split(",") if m]
    if not methods:
        raise RequestError("--methods names no method")
    requests = {m: requests_of(a, "smug" if m == "smug_base" else m)[0] for m in methods}
    names = labels_of(a)
    saved = reused(a.reuse, requests)
    from smug.pipeline import run

    panels, seconds, done = [], {}, {k: e for k, (_, e) in saved.items()}
    for m in methods:
        key = requests[m].method
        if key not in done:
            done[key] = run(requests[m])
        e = done[key] if names is None else _relabeled(done[key], names)
        panels.append((m, e))
        seconds[m] = e.timings["total"]
    write_atomic(a.out, comparison_png(panels))
    reuse = {m: str(saved[requests[m].method][0]) for m in methods if requests[m].method in saved}
    print(json.dumps({"out": a.out, "seconds": seconds, "reused": reuse}, indent=2))
    return 0


def reused(paths: list[str], requests: dict[str, ExplainRequest]) -> dict[str, tuple[str, Explanation]]:
    """The explanations of ``--from`` by method (with their path), each checked to answer the
    request its panel would run (same model, input, method and parameters; the timeout and
    backend may differ).  All are read before anything is computed."""
    loose = ("timeout", "backend", "name")
    wanted = {r.method: {k: v for k, v in json.loads(json.dumps(r.to_json())).items() if k not in loose}
              for r in requests.values()}
    out = {}
    for path in paths:
        e = Explanation.load(path)
        if e.method not in wanted:
            raise RequestError(f"--from {path}: its method {e.method} is not among --methods")
        have, want = _flat({k: v for k, v in e.request.items() if k not in loose}), _flat(wanted[e.method])
        differ = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
        if differ:
            shown = ", ".join(f"{k} {have.get(k)!r} (here {want.get(k)!r})" for k in differ)
            raise RequestError(f"--from {path} explains something else: {shown}")
        out[e.method] = (path, e)
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    """Nested dicts as dotted keys (``config.top_k``)."""
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _dump(a: argparse.Namespace) -> int:
    from smug.common import write_atomic
    from smug.pipeline import dump

    d = dump(requests_of(a)[0], format=a.format, bound=a.bound, result=a.result)
    write_atomic(a.out, d.text.encode())
    print(f"wrote {a.out} ({d.constraints} constraints, {a.format})")
    return 0


def run_command(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.command == "models":
        from smug.pipeline.models import zoo_catalog

        for entry in zoo_catalog().values():
            print(f"{entry.name:20s} {entry.description}")
        return 0
    if a.command == "serve":
        raise RequestError(SERVER_HINT)
    if a.command in ("inspect", "check"):
        from smug.debugging.commands import run_command as debugging_command

        return debugging_command(a)
    if a.command == "farm":
        from smug.farm.commands import run_command as farm_command

        return farm_command(a)
    if a.command in ("evaluate", "report"):
        from smug.evaluation.commands import run_command as evaluation_command

        return evaluation_command(a)
    return {"explain": _explain, "compare": _compare, "dump": _dump}[a.command](a)


def main(argv: list[str] | None = None) -> None:
    try:
        code = run_command(argv)
    except (RequestError, InputError, ModelError, DeadlineExceeded, ValueError, OSError) as exc:
        print(f"smug: error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
