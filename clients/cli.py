"""``smug`` command line: ``smug explain``, ``smug dump``, ``smug models``.

Bad input prints one ``smug: error: ...`` line and exits with status 2; nothing is
written unless the whole explanation succeeded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from smug.models.preprocess import InputError
from smug.models.runtime import ModelError


def _method_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", nargs="?", help="image file (default: the model's bundled demo input)")
    p.add_argument("--model", default="efficientnet-lite0", help="zoo name or path to an .onnx file")
    p.add_argument("--top-k", type=int, default=3000, help="IG-ranked first-layer neurons to keep (default 3000)")
    p.add_argument("--gamma", type=float, default=0.0, help="masked > gamma * original, gamma in [0, 1)")
    p.add_argument("--window", type=int, default=4, help="mask block size in pixels (default 4)")
    p.add_argument("--form", choices=("linear", "affine"), default="linear",
                   help="linear: bias-free W(x*m) > gamma W x (default); affine: with the bias (Eq. 3 literally)")
    p.add_argument("--baseline", type=float, default=0.0, help="masked-out value in model-input space")
    p.add_argument("--ig-steps", type=int, default=None, help="IG steps (default: adaptive by completeness)")
    p.add_argument("--target", type=int, default=None, help="class to explain (default: the prediction)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smug", description="Provably minimal masks explaining a classifier")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("explain", help="minimal SMUG mask, saliency map and certificate")
    _method_args(ex)
    ex.add_argument("--backend", choices=("auto", "highs", "z3", "enum", "portfolio"), default="auto",
                    help="first-layer: auto|highs|z3; whole network: auto|highs|z3|enum|portfolio")
    ex.add_argument("--whole-network", action="store_true",
                    help="encode the whole ReLU network: smallest mask that keeps the class (paper Appendix A)")
    ex.add_argument("--delta", type=float, default=0.0, help="whole network: logit margin to keep, >= 0")
    ex.add_argument("--min-confidence", type=float, default=None,
                    help="whole network: also keep softmax(target) >= this (via a sufficient margin)")
    ex.add_argument("--timeout", type=float, default=60.0, help="solver time limit in seconds")
    ex.add_argument("--out", default="smug-out", help="output folder (result.json, mask/saliency/overlay PNGs)")
    ex.add_argument("--server", default=None, metavar="HOST:PORT",
                    help="solve on a smug server (smug serve), with a progress bar; token from $SMUG_TOKEN")
    ex.add_argument("--text", default=None, help="text models: the text to explain (top-k 100 unless given)")
    ex.add_argument("--text-file", default=None, help="text models: a UTF-8 file, one text per line")
    ex.add_argument("--method", default="smug",
                    help="smug (default) or a baseline: gradient, integrated_gradients, gradcam, occlusion, ...")
    cmp_ = sub.add_parser("compare", help="input and each method's map side by side, as PNG")
    _method_args(cmp_)
    cmp_.add_argument("--methods", default="smug,smug_base,gradient,integrated_gradients,gradcam",
                      help="comma-separated: smug, smug_base and any baseline name")
    cmp_.add_argument("--out", default="comparison.png")
    dump = sub.add_parser("dump", help="write the encoding as SMT-LIB2")
    _method_args(dump)
    dump.add_argument("--out", default="smug-constraints.smt2", help="output .smt2 file")
    sub.add_parser("models", help="list the model zoo")
    from smug.server.main import add_arguments as serve_arguments

    serve_arguments(sub.add_parser("serve", help="run the gRPC solver service (also: python -m smug.server)"))
    from smug.clients.evaluate import add_commands

    add_commands(sub)  # evaluate, report
    return parser


def _config_kwargs(a: argparse.Namespace) -> dict:
    return dict(top_k=a.top_k, gamma=a.gamma, window=a.window, form=a.form, baseline=a.baseline, ig_steps=a.ig_steps)


def _is_text_model(name: str) -> bool:
    from smug.models.zoo import ZOO

    return getattr(ZOO.get(name), "kind", "image") == "text"


def run(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.command == "models":
        from smug.models.zoo import ZOO

        for entry in ZOO.values():
            print(f"{entry.name:20s} {entry.description}")
        return 0
    if a.command == "serve":
        from smug.server.main import serve_from_args

        return serve_from_args(a)
    if a.command == "explain" and a.server:
        from smug.clients.client import cli_explain

        return cli_explain(a, sys.argv[1:] if argv is None else argv)
    if a.command in ("evaluate", "report"):
        from smug.clients.evaluate import run_command

        return run_command(a)
    if a.command == "explain" and (a.text is not None or a.text_file is not None or _is_text_model(a.model)):
        from smug.clients.text import cli_explain

        return cli_explain(a, sys.argv[1:] if argv is None else argv)
    if a.image is not None and not Path(a.image).is_file():
        raise InputError(f"input file not found: {a.image}")
    if a.command == "compare":
        from smug.clients.compare import comparison_png
        from smug.clients.result import write_atomic

        png, seconds = comparison_png(a.image, a.model, [m for m in a.methods.split(",") if m],
                                      target=a.target, **_config_kwargs(a))
        write_atomic(a.out, png)
        print(json.dumps({"out": a.out, "seconds": seconds}, indent=2))
        return 0
    if a.command == "explain" and a.method != "smug":
        from smug.clients.compare import baseline_result
        from smug.clients.result import write_atomic
        from smug.rendering.pictures import overlay_png, saliency_png

        r = baseline_result(a.image, a.model, a.method, a.target)
        summary = {k: v for k, v in r.items() if k not in ("map", "image")}
        files = {"result.json": json.dumps(summary, indent=2, default=str).encode(),
                 "saliency.png": saliency_png(np.abs(r["map"])), "overlay.png": overlay_png(r["image"], np.abs(r["map"]))}
        for name, data in files.items():
            write_atomic(Path(a.out) / name, data)
        print(json.dumps({"method": r["method"], "target": r["target"], "seconds": r["seconds"], "out": a.out}))
        return 0
    if a.command == "explain":
        from smug.clients.api import explain, explain_network

        if a.whole_network:
            e = explain_network(a.image, model=a.model, window=a.window, delta=a.delta, baseline=a.baseline,
                                backend=a.backend, timeout=a.timeout, target=a.target,
                                min_confidence=a.min_confidence)
        else:
            e = explain(a.image, model=a.model, backend=a.backend, timeout=a.timeout, target=a.target,
                        **_config_kwargs(a))
        e.save(a.out)
        print(json.dumps({
            "status": e.status, "target": f"{e.target} {e.target_name} ({e.confidence:.3f})",
            "blocks": f"{e.objective} of {e.n_blocks}", "lower_bound": e.lower_bound,
            "base_blocks": int(e.base_mask.sum()), "certificate_valid": e.certificate["valid"],
            "masked_prediction": e.masked_prediction, "timings_s": e.timings, "out": a.out,
        }, indent=2))
        return 0 if e.status in ("optimal", "feasible") else 1
    from smug.clients.api import encode
    from smug.encoders.smug import SmugConfig
    from smug.solver.smtlib import to_smtlib

    enc, ctx = encode(a.image, a.model, SmugConfig(**_config_kwargs(a)), a.target)
    header = [f"smug dump: model {ctx['model'].name}, input {ctx['label']}, target class {enc.target}",
              f"top-k {a.top_k}, gamma {a.gamma}, window {a.window}, form {a.form}"]
    text = to_smtlib(enc.problem, header)
    out = Path(a.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"wrote {out} ({enc.problem.n_constraints} constraints)")
    return 0


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
    except (InputError, ModelError, ValueError, OSError) as exc:
        print(f"smug: error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)


if __name__ == "__main__":
    main()
