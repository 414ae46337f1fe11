"""Make docs/gallery/: the pictures and pages smug draws, with every answer's numbers in results.json.

The bundled inputs (and, with ``--photos``, two photos of the shared ImageNet sample) are explained,
the numbers of every answer go to ``results.json`` and the gallery's README is written from it, so that every number the gallery (and the project's README) quotes is what
this code gives.  The one way to make the gallery:

    python -m smug.bench.gallery                  # MNIST, text and the page screenshots (a few minutes)
    python -m smug.bench.gallery --photos         # also EfficientNet-Lite0 on the photos (several minutes;
                                                  # tench-keep-class runs into its solver timeouts)
    python -m smug.bench.gallery --only mnist-plain,siamese_cat-plain   # just these entries

Entries not made in a run keep their earlier record in ``results.json``; page screenshots need Chromium.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from smug.bench.common import IMAGENET, ROOT, load_average
from smug.common import write_atomic

GALLERY = ROOT / "docs" / "gallery"
RESULTS = GALLERY / "results.json"
PHOTOS = {"siamese_cat": "n02123597_Siamese_cat.JPEG", "tench": "n01440764_tench.JPEG"}
TEXT = "a gorgeous, funny and deeply moving film, let down by a dull ending"
TEXTS = (TEXT, "the plot is a mess and the acting is wooden, but the music is lovely")
COMPARED = ("smug", "smug_base", "gradient", "integrated_gradients", "occlusion")


@dataclass(frozen=True)
class Entry:
    """One gallery item: the command a user types for the same picture, and how to make it here."""

    name: str
    command: str
    make: Callable[[], tuple[dict[str, bytes], dict]]  # -> (files by name under docs/gallery, facts)
    kind: str = "mnist"  # mnist | photos (Lite0, the shared photos) | pages (Chromium)


def facts(e) -> dict:
    """The numbers of one answer, as the gallery and the README quote them."""
    c = e.constraints
    return {"method": e.method, "model": e.model, "target": e.target, "target_name": e.target_name,
            "status": e.status, "objective": e.objective, "n_vars": e.n_vars, "lower_bound": e.lower_bound,
            "keeps_class": e.keeps_class, "masked_confidence": e.masked_confidence,
            **{k: c[k] for k in ("top_k", "gamma", "window", "delta") if c.get(k) is not None},
            "seconds": e.timings.get("total")}


def answer(name: str, source: str | None, model: str, **params) -> tuple[dict[str, bytes], dict]:
    from smug.pipeline import explain

    e = explain(source, model, timeout=60, **params)
    return {f"{name}.png": e.figure()}, facts(e)


def comparison(name: str, source: str | None, model: str) -> tuple[dict[str, bytes], dict]:
    from smug.pipeline import explain
    from smug.rendering.compare import comparison_png

    runs = {m: explain(source, model, method=m, timeout=60) for m in COMPARED if m != "smug_base"}
    panels = [(m, runs["smug" if m == "smug_base" else m]) for m in COMPARED]
    smug = runs["smug"]
    return {f"{name}.png": comparison_png(panels)}, {**facts(smug), "base_size": int(smug.base_mask.sum())}


def text_page(name: str) -> tuple[dict[str, bytes], dict]:
    from smug.pipeline import explain

    e = explain(None, "text-cnn", text=TEXT)
    return {f"{name}.html": e.files()["explanation.html"]}, facts(e)


def _shot(html: str, out: str, width: int, height: int) -> dict[str, bytes]:
    from smug.rendering.browser import screenshot

    with tempfile.TemporaryDirectory() as work:
        page = Path(work) / "page.html"
        page.write_text(html, encoding="utf-8")
        return {out: screenshot(page, Path(work) / "shot.png", width, height).read_bytes()}


def pages() -> tuple[dict[str, bytes], dict]:
    """Screenshots of the report, the text page, a notebook cell and the inspect page."""
    import numpy as np
    from PIL import Image

    from smug.debugging.inspect import inspect
    from smug.pipeline import ExplainRequest, dump, explain, run
    from smug.rendering.text_html import render_page

    files = {}
    with tempfile.TemporaryDirectory() as work:
        w = Path(work)
        digit = np.asarray(Image.open(ROOT / "models" / "assets" / "mnist-digit.png").convert("L"))
        paths = []
        for i, shift in enumerate([(0, 0), (3, 1), (-2, 2)]):
            paths.append(str(w / f"digit{i}.png"))
            Image.fromarray(np.roll(digit, shift, axis=(0, 1))).save(paths[-1])
        smug_cli = [sys.executable, "-m", "smug"]
        subprocess.run([*smug_cli, "evaluate", *paths, "--model", "mnist-mlp", "--methods",
                        "smug,smug_base,ig,gradient,centerbox,maxbox", "--db", str(w / "eval.sqlite")],
                       check=True, capture_output=True)
        subprocess.run([*smug_cli, "report", "--db", str(w / "eval.sqlite"), "--out", str(w / "report.html")],
                       check=True, capture_output=True)
        files.update(_shot((w / "report.html").read_text(), "pages/report.png", 1280, 2500))
        texts = [explain(None, "text-cnn", text=t) for t in TEXTS]
        files.update(_shot(render_page(texts), "pages/text-page.png", 1280, 1100))
        e = explain(None, "mnist-mlp")
        cell = f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{e._repr_html_()}</body></html>"
        files.update(_shot(cell, "pages/notebook.png", 1300, 800))
        req = ExplainRequest.build(None, "mnist-mlp", timeout=60)
        (w / "e").mkdir()
        run(req).save(w / "e")
        (w / "c.smt2").write_text(dump(req, format="smt2").text)
        inspect(str(w / "c.smt2"), str(w / "e" / "result.json"), out_dir=str(w / "inspect"))
        files.update(_shot((w / "inspect" / "index.html").read_text(), "pages/inspect.png", 1280, 2000))
    return files, {}


def entries() -> list[Entry]:
    """Everything the gallery shows, in its order."""
    out = [Entry("mnist-plain", "smug explain --model mnist-mlp", lambda: answer("mnist-plain", None, "mnist-mlp")),
           Entry("mnist-keep-class", "smug explain --model mnist-mlp --keep-class",
                 lambda: answer("mnist-keep-class", None, "mnist-mlp", keep_class=True)),
           Entry("mnist-whole-network", "smug explain --model mnist-mlp --method whole-network",
                 lambda: answer("mnist-whole-network", None, "mnist-mlp", method="whole-network")),
           Entry("mnist-integrated-gradients", "smug explain --model mnist-mlp --method integrated_gradients",
                 lambda: answer("mnist-integrated-gradients", None, "mnist-mlp", method="integrated_gradients")),
           Entry("mnist-compare", f"smug compare --model mnist-mlp --methods {','.join(COMPARED)}",
                 lambda: comparison("mnist-compare", None, "mnist-mlp")),
           Entry("text", f'smug explain --model text-cnn --text "{TEXT}"', lambda: text_page("text"))]
    for stem, photo in PHOTOS.items():
        path = str(IMAGENET / photo)
        out += [Entry(f"{stem}-plain", f"smug explain {photo} --model efficientnet-lite0",
                      lambda s=stem, p=path: answer(f"{s}-plain", p, "efficientnet-lite0"), "photos"),
                Entry(f"{stem}-keep-class", f"smug explain {photo} --model efficientnet-lite0 --keep-class",
                      lambda s=stem, p=path: answer(f"{s}-keep-class", p, "efficientnet-lite0", keep_class=True),
                      "photos")]
    out.append(Entry("pages", "smug report, explanation.html, a notebook cell, smug inspect's index.html "
                              "(screenshots in headless Chromium)", pages, "pages"))
    return out


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def readme(results: dict) -> str:
    """docs/gallery/README.md, written from ``results.json`` only."""
    lines = ["# Gallery", "", "Made by `python -m smug.bench.gallery` (see its docstring); the numbers are in "
             "[`results.json`](results.json), written by the same run. Figures are what `smug explain` writes to "
             "`figure.png` and `smug compare` to its `--out`.", "",
             "| picture | command | status | kept / variables | proven lower bound | keeps the class | "
             "masked p | k | gamma | made |", "|---|---|---|---|---|---|---|---|---|---|"]
    order = [e.name for e in entries()]
    for name in sorted(results["entries"], key=lambda n: order.index(n) if n in order else len(order)):
        r = results["entries"][name]
        f = r["facts"]
        links = ", ".join(f"[`{p}`]({p})" for p in r["files"])
        kept = "-" if f.get("objective") is None else f"{f['objective']} / {f['n_vars']}"
        if f.get("base_size") is not None:
            kept += f" (smug_base {f['base_size']})"
        lines.append(f"| {links} | `{r['command']}` | {_cell(f.get('status'))} | {kept} | "
                     f"{_cell(f.get('lower_bound') if f.get('objective') is not None else None)} | "
                     f"{_cell(f.get('keeps_class'))} | "
                     f"{_cell(f.get('masked_confidence'))} | {_cell(f.get('top_k'))} | {_cell(f.get('gamma'))} | "
                     f"{r['made']} |")
    missing = [n for n in order if n not in results["entries"]]
    if missing:
        lines += ["", "Not made by the last runs (make one with `python -m smug.bench.gallery --only NAME`): "
                  + ", ".join(f"`{n}`" for n in missing) + "."]
    return "\n".join(lines) + "\n"


def revision() -> str:
    """The checkout's commit (``+`` when it has uncommitted changes), or "" outside git."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty=+"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", action="store_true", help="also the Lite0 answers on the shared photos (minutes)")
    p.add_argument("--only", default="", help="comma-separated entry names to make (default: every cheap one)")
    a = p.parse_args()
    known = {e.name: e for e in entries()}
    only = [n for n in a.only.split(",") if n]
    unknown = [n for n in only if n not in known]
    if unknown:
        p.error(f"unknown entries {unknown}; known: {', '.join(known)}")
    chosen = [known[n] for n in only] if only else [e for e in known.values() if e.kind != "photos" or a.photos]
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"entries": {}}
    import smug

    stamp = f"smug {smug.__version__} {revision()}".strip()  # the code of this run (+: uncommitted changes in it)
    for e in chosen:
        if e.kind == "photos" and not IMAGENET.is_dir():
            print(f"{e.name}: skipped (no shared ImageNet sample at ../shared/data)", file=sys.stderr)
            continue
        if e.kind == "pages":
            from smug.rendering.browser import chromium

            if chromium() is None:
                print(f"{e.name}: skipped (no chromium on PATH)", file=sys.stderr)
                continue
        t0 = time.process_time()
        files, made = e.make()
        for name, data in files.items():
            write_atomic(GALLERY / name, data)
        results["entries"][e.name] = {"command": e.command, "files": sorted(files), "facts": made,
                                      "made": stamp}
        print(f"{e.name}: {time.process_time() - t0:.1f} s CPU (this process), load {load_average()}",
              file=sys.stderr)
    write_atomic(RESULTS, (json.dumps(results, indent=1, sort_keys=True) + "\n").encode())
    write_atomic(GALLERY / "README.md", readme(results).encode())


if __name__ == "__main__":
    main()
