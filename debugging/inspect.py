"""``smug inspect DUMP [--result R] [--image FILE] [--out DIR]``: what a dump's constraints say.

Read with pysmt / python-sat / HiGHS (:mod:`smug.debugging.reader`), never with smug's writer.
Reports variables and rows, the row-width histogram, independent components, blocks forced on
(a row that holds only with them), rows no mask satisfies (with a minimal unsatisfiable core
when the whole problem is infeasible), redundant rows (every mask satisfies them); with a
result: each row's slack, the tight rows and, for every kept block, the rows that fail when it
alone is switched off ("why this block").  With ``--out``: ``report.json``, pictures and
``index.html``.
"""

from __future__ import annotations

import base64
import html
import json
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import numpy as np

from smug.debugging import solve
from smug.debugging.reader import ParsedDump, Row, read_dump

SHOWN = 20  # names listed per item in the summary


def bounds(row: Row) -> tuple[Fraction, Fraction]:
    """The row's smallest and largest value over all masks."""
    lo = sum((a for a in row.coef.values() if a < 0), Fraction(0))
    hi = sum((a for a in row.coef.values() if a > 0), Fraction(0))
    return lo, hi


def _holds(value: Fraction, row: Row) -> bool:
    return value > row.r if row.strict else value >= row.r


def forced(row: Row) -> list[str]:
    """Variables the row needs on: with one of them off, no mask satisfies it."""
    _, hi = bounds(row)
    return [n for n, a in row.coef.items() if a > 0 and not _holds(hi - a, row)]


def analyse(dump: ParsedDump, result_mask: set[str] | None = None) -> dict:
    """The report as a JSON-able dict."""
    t0 = time.perf_counter()
    out: dict = {"dump": dump.path, "kind": dump.kind, "format": dump.format, "exact": dump.exact,
                 "model": dump.meta.get("model"), "target": dump.meta.get("target"),
                 "params": dump.meta.get("params"), "variables": len(dump.variables)}
    if dump.format == "wcnf":
        widths = Counter(len(c) for _, c in dump.clauses)
        out.update(clauses=len(dump.clauses), rows=len({r for r, _ in dump.clauses}),
                   clause_width_histogram=dict(sorted(widths.items())))
    elif dump.network:
        out.update(statements=len(dump.statements),
                   unstable_relus=sum(1 for _, f in dump.statements if f.is_equals() and f.arg(1).is_ite()
                                      and not f.arg(1).arg(0).is_symbol()),
                   margin_rows=[n for n, _ in dump.statements if n.startswith("margin")])
    if not dump.rows:
        comps = solve.components(dump) if dump.clauses else []
        out["components"] = [len(c.variables) for c in comps]
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out
    rows = dump.rows
    out["rows"] = len(rows)
    out["row_width_histogram"] = dict(sorted(Counter(len(r.coef) for r in rows).items()))
    comps = solve.components(dump)
    out["components"] = [len(c.variables) for c in comps]
    never, always, force = [], [], {}
    for r in rows:
        lo, hi = bounds(r)
        if not _holds(hi, r):
            never.append(r.name)
        elif _holds(lo, r):
            always.append(r.name)
        for n in forced(r):
            force.setdefault(n, []).append(r.name)
    out["unsatisfiable_rows"] = never
    out["redundant_rows"] = always
    out["forced_blocks"] = {n: force[n] for n in sorted(force)}
    cores = []
    for c in comps:
        part = [rows[i] for i in c.rows]
        if not solve.satisfiable(part):
            cores.append([r.name for r in solve.minimal_core(part)])
    out["infeasible"] = bool(cores)
    out["minimal_cores"] = cores
    if result_mask is not None:
        on = set(result_mask)
        slack = {r.name: float(r.slack(on)) for r in rows}
        why = {}
        for n in sorted(on):
            fails = [r.name for r in rows if n in r.coef and not r.holds(on - {n})]
            why[n] = fails
        out["slack"] = slack
        out["failing_rows"] = [r.name for r in rows if not r.holds(on)]
        out["tight_rows"] = sorted({r for fails in why.values() for r in fails})
        out["why"] = why
        out["unexplained_blocks"] = [n for n, f in why.items() if not f]
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def summary(report: dict) -> dict:
    """The report with long lists cut to their first names (for the terminal)."""
    short = {}
    for k, v in report.items():
        if k in ("slack",):
            continue
        if isinstance(v, list) and len(v) > SHOWN:
            short[k] = v[:SHOWN] + [f"... {len(v) - SHOWN} more"]
        elif isinstance(v, dict) and len(v) > SHOWN:
            short[k] = {**dict(list(v.items())[:SHOWN]), "...": f"{len(v) - SHOWN} more"}
        else:
            short[k] = v
    return short


# ---- pictures and the page ----------------------------------------------------------
def block_maps(dump: ParsedDump, report: dict) -> dict[str, np.ndarray]:
    """Per-pixel maps over the input: forced blocks, slack (smallest over the rows a block is in), why-counts."""
    variables = dump.meta.get("variables", {})
    if not variables or "block" not in next(iter(variables.values())):
        return {}
    window = int(dump.meta.get("params", {}).get("window") or 1)
    h = max(v["pixel"][0] for v in variables.values()) + window
    w = max(v["pixel"][1] for v in variables.values()) + window

    def paint(values: dict[str, float]) -> np.ndarray:
        out = np.zeros((h, w))
        for n, val in values.items():
            y, x = variables[n]["pixel"]
            out[y:y + window, x:x + window] = val
        return out

    maps = {"forced": paint({n: 1.0 for n in report.get("forced_blocks", {})})}
    if "why" in report:
        maps["why"] = paint({n: float(len(f)) for n, f in report["why"].items()})
        least = {}
        for r in dump.rows:
            for n in r.coef:
                s = report["slack"][r.name]
                least[n] = min(least.get(n, np.inf), s)
        finite = {n: v for n, v in least.items() if np.isfinite(v)}
        top = max([abs(v) for v in finite.values()] + [1e-300])
        maps["slack"] = paint({n: 1.0 - min(1.0, max(0.0, v) / top) for n, v in finite.items()})  # bright = tight
    return maps


def pictures(maps: dict[str, np.ndarray], image: str | None) -> dict[str, bytes]:
    from smug.rendering.pictures import overlay_png, saliency_png

    picture = None
    if image is not None and maps:
        from PIL import Image

        shape = next(iter(maps.values())).shape
        picture = np.asarray(Image.open(image).convert("RGB").resize((shape[1], shape[0])))
    return {f"{k}.png": (overlay_png(picture, m) if picture is not None else saliency_png(m)) for k, m in maps.items()}


def page(report: dict, images: dict[str, bytes]) -> str:
    """One HTML page: the summary and the pictures."""
    parts = [f"<h1>smug inspect: {html.escape(str(report.get('dump')))}</h1>",
             "<pre>" + html.escape(json.dumps(summary(report), indent=2)) + "</pre>"]
    captions = {"forced.png": "blocks forced on (a row holds only with them)",
                "slack.png": "tightness at the result (bright: a row through the block has little slack)",
                "why.png": "why-counts: rows that fail when the block alone is switched off"}
    for name, data in images.items():
        src = "data:image/png;base64," + base64.b64encode(data).decode()
        parts.append(f"<figure><img src='{src}' style='width:320px;image-rendering:pixelated'>"
                     f"<figcaption>{html.escape(captions.get(name, name))}</figcaption></figure>")
    return "<!doctype html><meta charset='utf-8'><title>smug inspect</title>" + "\n".join(parts)


def inspect(dump_path: str, result_path: str | None = None, image: str | None = None,
            out_dir: str | None = None) -> dict:
    """Read, analyse and (with ``out_dir``) write ``report.json``, the pictures and ``index.html``."""
    from smug.debugging.check import load_result, mask_of

    dump = read_dump(dump_path)
    mask = mask_of(dump, load_result(result_path)) if result_path else None
    report = analyse(dump, mask)
    if out_dir:
        from smug.common import write_files

        images = pictures(block_maps(dump, report), image)
        files = {"report.json": json.dumps(report, indent=2).encode(), **images,
                 "index.html": page(report, images).encode()}
        write_files(out_dir, files)
        report["out"] = str(out_dir)
    return report
