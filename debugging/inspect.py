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
    named = {r.name: r for r in rows}
    out["row_facts"] = {n: row_facts(named[n]) for n in dict.fromkeys([*never, *(n for c in cores for n in c)])}
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
def row_facts(row: Row) -> dict:
    """What one row asks, for a reader: the blocks it wants on and off, its threshold and its best value."""
    lo, hi = bounds(row)
    return {"wants_on": sorted(n for n, a in row.coef.items() if a > 0),
            "wants_off": sorted(n for n, a in row.coef.items() if a < 0),
            "needs": f"{'>' if row.strict else '>='} {float(row.r):.6g}", "lowest": float(lo), "highest": float(hi)}


def block_maps(dump: ParsedDump, report: dict, mask: set[str] | None = None) -> dict[str, np.ndarray]:
    """Per-pixel maps over the input: the result's kept blocks, forced blocks, why-counts and tightness
    (1 minus the smallest slack over the rows a block is in, relative to the largest)."""
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

    maps = {}
    if mask is not None:
        maps["kept"] = paint({n: 1.0 for n in mask if n in variables})
    if report.get("forced_blocks"):
        maps["forced"] = paint({n: 1.0 for n in report["forced_blocks"]})
    if "why" in report:
        maps["why"] = paint({n: float(len(f)) for n, f in report["why"].items()})
        least = {}
        for r in dump.rows:
            for n in r.coef:
                least[n] = min(least.get(n, np.inf), report["slack"][r.name])
        finite = {n: v for n, v in least.items() if np.isfinite(v)}
        top = max([abs(v) for v in finite.values()] + [1e-300])
        maps["slack"] = paint({n: 1.0 - min(1.0, max(0.0, v) / top) for n, v in finite.items()})  # 1 = tight
    return maps


def saved_arrays(result_path: str | None) -> dict[str, np.ndarray]:
    """The arrays ``smug explain`` saved beside the result (``arrays.npz``: picture, saliency, ...), if any."""
    if not result_path:
        return {}
    path = Path(result_path).parent / "arrays.npz"
    if not path.is_file():
        return {}
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def input_picture(image: str | None, arrays: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray | None:
    """The input as RGB at the maps' size: ``--image``, else the picture saved beside the result."""
    from PIL import Image

    if image is not None:
        return np.asarray(Image.open(image).convert("RGB").resize((shape[1], shape[0])))
    picture = arrays.get("picture")
    if picture is not None and picture.shape[:2] == shape:
        return picture
    return None


def figures(maps: dict[str, np.ndarray], picture: np.ndarray | None, arrays: dict[str, np.ndarray],
            report: dict) -> dict[str, "MapFigure"]:
    """The page's pictures by file name, each laid over the input (grey when there is no picture)."""
    from smug.rendering.colormap import COLORMAP, FADED, MapScale, map_scale
    from smug.rendering.inspect_page import MapFigure
    from smug.rendering.pictures import overlay, png

    if not maps:
        return {}
    shape = next(iter(maps.values())).shape
    under = picture if picture is not None else np.full((*shape, 3), 255, np.uint8)
    kept = maps.get("kept")
    on_off = MapScale(COLORMAP, 0.0, 1.0)
    out = {}

    missing = "" if picture is not None else " (No input picture: pass --image to see it underneath.)"

    def add(name: str, values: np.ndarray, title: str, caption: str, scale: MapScale, support=None,
            tinted: str | None = None):
        """A map with its colour bar, or (``tinted``: what a tinted block is) a yes/no picture with that legend."""
        out[f"{name}.png"] = MapFigure(png(overlay(under, values, support, scale)), title, caption + missing,
                                       scale.rule if tinted is None else f"Tinted: {tinted}; {FADED}.",
                                       scale if tinted is None else None)

    if kept is not None:
        add("kept", kept, f"The result's mask: {len(report.get('why', {}))} blocks",
            "The kept blocks tinted, every other block faded.", on_off, kept > 0, tinted="kept")
    saliency = arrays.get("saliency")
    if kept is not None and saliency is not None and saliency.shape == shape:
        add("saliency", saliency, "Saliency (Eq. 4) over the input",
            "Each kept pixel's score: the IG attribution of the kept neurons that see it.", map_scale(saliency), kept > 0)
    if "why" in maps:
        add("why", maps["why"], "Why each block is kept",
            "For each kept block, how many rows fail when it alone is switched off (0: no single row needs it).",
            map_scale(maps["why"]), kept > 0 if kept is not None else None)
    if "slack" in maps and np.ptp(maps["slack"]) > 0:  # flat when every row reads every block
        add("slack", maps["slack"], "How tight the rows through a block are",
            "1: a row through the block holds at the result with no slack to spare; 0: the most slack of any row.",
            on_off)
    if "forced" in maps:
        add("forced", maps["forced"], f"Blocks every mask needs: {len(report['forced_blocks'])}",
            "A row holds only with each of these blocks on, so no mask can leave them out.", on_off, maps["forced"] > 0,
            tinted="needed by every mask")
    return out


def _where(dump: ParsedDump, name: str) -> str:
    v = dump.meta.get("variables", {}).get(name) or {}
    if "pixel" in v:
        return f"row {v['pixel'][0]}, column {v['pixel'][1]}"
    return f"word {v['word']}" if "word" in v else "-"


def _names(names: list[str], most: int = 6) -> str:
    """The first ``most`` names and how many more ("-" for none)."""
    if not names:
        return "-"
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def sections(dump: ParsedDump, report: dict) -> list[tuple[str, str]]:
    """The explanations of the page as (heading, HTML) pairs."""
    from smug.rendering.inspect_page import table

    out = []
    if report.get("infeasible") or report.get("unsatisfiable_rows"):
        facts = report.get("row_facts", {})
        relax = (" A smaller gamma (or a smaller k: fewer neurons held) relaxes the rows." if dump.kind == "first-layer"
                 else "")
        body = [f"<p class='verdict'>No mask satisfies every row: the constraints contradict each other.{relax}</p>"]
        if report.get("unsatisfiable_rows"):
            body.append("<p>These rows fail even for the best mask (their highest reachable value is below what they "
                        "need):</p>" + table(["row", "needs", "highest reachable"],
                                             [[n, facts[n]["needs"], facts[n]["highest"]]
                                              for n in report["unsatisfiable_rows"]]))
        for i, core in enumerate(report.get("minimal_cores", []), 1):
            body.append(f"<p>Conflict {i}: these {len(core)} rows cannot hold together, and dropping any one of them "
                        "lets the rest hold (a minimal unsatisfiable core):</p>"
                        + table(["row", "blocks it wants on", "blocks it wants off", "needs", "highest reachable"],
                                [[n, _names(facts[n]["wants_on"]), _names(facts[n]["wants_off"]), facts[n]["needs"],
                                  facts[n]["highest"]] for n in core]))
        out.append(("Can the constraints hold at all? No", "".join(body)))
    else:
        failing = report.get("failing_rows", [])
        verdict = (f"Yes. Every row can hold; {len(report.get('redundant_rows', []))} rows hold for every mask "
                   "(redundant)." + ("" if "failing_rows" not in report else
                                     " The result's mask satisfies every row." if not failing else
                                     f" But the result's mask fails {len(failing)} rows: {_names(failing)}."))
        out.append(("Can the constraints hold at all? Yes", f"<p class='verdict'>{html.escape(verdict)}</p>"))
    if "why" in report:
        rows = [[n, _where(dump, n), len(f), _names(f), round(min((report["slack"][r] for r in f), default=0.0), 6)]
                for n, f in report["why"].items()]
        rows.sort(key=lambda r: -r[2])
        note = ("<p class='note'>A block of a minimal mask is there because some row fails without it. "
                + (f"{len(report['unexplained_blocks'])} kept blocks are needed by no single row "
                   f"({_names(report['unexplained_blocks'])}): a pair or more of them is needed together."
                   if report.get("unexplained_blocks") else "Every kept block here is needed by at least one row.")
                + "</p>")
        out.append(("Why is each block in the mask?",
                    note + table(["block", "where (top-left pixel)", "rows that fail without it", "those rows",
                                  "their smallest slack"], rows)))
    if report.get("forced_blocks"):
        out.append(("Blocks every mask needs",
                    table(["block", "where (top-left pixel)", "rows that need it"],
                          [[n, _where(dump, n), _names(r)] for n, r in report["forced_blocks"].items()])))
    widths = report.get("row_width_histogram") or report.get("clause_width_histogram") or {}
    comps = Counter(report.get("components", []))
    out.append(("How the problem is built",
                "<p class='note'>Independent parts (components) share no mask variable and are solved apart.</p>"
                + table(["variables in a component", "components"], [[k, v] for k, v in sorted(comps.items())])
                + table(["variables in a row", "rows"], [[int(k), v] for k, v in widths.items()])))
    return out


def title_and_facts(dump: ParsedDump, report: dict, result: dict | None) -> tuple[str, list[tuple[str, object]]]:
    """The page's title and its summary table."""
    params = report.get("params") or {}
    name = f" '{result['target_name']}'" if result and result.get("target_name") not in (None, str(report["target"])) \
        else ""
    status = result["status"] if result else "no result given"
    title = (f"smug inspect: {report.get('model')}, class {report.get('target')}{name}, "
             f"method {'whole-network' if dump.network else 'smug'} ({report['kind']} dump), status {status}")
    facts: list[tuple[str, object]] = [("dump", f"{Path(dump.path).name} ({dump.format}, "
                                                f"{'exact rationals' if dump.exact else 'floats'})")]
    if result:
        unit = "blocks" if int(params.get("window") or 1) > 1 else "variables"
        facts += [("status", result["status"]),
                  ("objective", f"{result.get('objective')} of {result.get('n_vars')} {unit} kept"),
                  ("lower bound (proven)", result.get("lower_bound")),
                  ("masked input keeps the class", {True: "yes", False: "no", None: "-"}[result.get("keeps_class")])]
    facts += [(label, params[key]) for key, label in (("top_k", "k (first-layer neurons kept)"),
                                                      ("gamma", "gamma (masked > gamma x original)"),
                                                      ("window", "block size (pixels)"), ("delta", "logit margin delta"))
              if params.get(key) is not None]
    comps = report.get("components", [])
    facts += [("mask variables in the dump (blocks that can change a row)", report.get("variables")), ("rows", report.get("rows", report.get("statements"))),
              ("components", f"{len(comps)} (largest {max(comps, default=0)} variables)"),
              ("blocks every mask needs", len(report.get("forced_blocks", {}))),
              ("infeasible", "yes" if report.get("infeasible") else "no")]
    if result and result.get("timings"):
        t = result["timings"]
        facts.append(("time of the run (s)", ", ".join(f"{k} {t[k]:.3g}" for k in ("total", "ig", "solve") if k in t)))
    facts.append(("time of this analysis (s)", report.get("seconds")))
    return title, facts


LEAD = ("What the constraints of a dump say, read back independently of the code that wrote them (pysmt, "
        "python-sat, HiGHS). A mask variable is one block of the input, kept (1) or replaced by the masked-out "
        "value (0); a row is one constraint on the mask: for a first-layer dump, one kept neuron whose masked "
        "pre-activation must stay above gamma times its original value.")


def page(dump: ParsedDump, report: dict, result: dict | None, pictures: dict) -> str:
    """One self-contained HTML page (see :mod:`smug.rendering.inspect_page`)."""
    from smug.rendering.inspect_page import page as render

    title, facts = title_and_facts(dump, report, result)
    return render(title, LEAD, facts, list(pictures.values()), sections(dump, report), report)


def inspect(dump_path: str, result_path: str | None = None, image: str | None = None,
            out_dir: str | None = None) -> dict:
    """Read, analyse and (with ``out_dir``) write ``report.json``, the pictures and ``index.html``."""
    from smug.debugging.check import load_result, mask_of

    dump = read_dump(dump_path)
    result = load_result(result_path) if result_path else None
    mask = mask_of(dump, result) if result is not None else None
    report = analyse(dump, mask)
    if out_dir:
        from smug.common import write_files

        maps = block_maps(dump, report, mask)
        arrays = saved_arrays(result_path)
        picture = input_picture(image, arrays, next(iter(maps.values())).shape) if maps else None
        shown = figures(maps, picture, arrays, report)
        files = {"report.json": json.dumps(report, indent=2).encode(), **{n: f.png for n, f in shown.items()},
                 "index.html": page(dump, report, result, shown).encode()}
        write_files(out_dir, files)
        report["out"] = str(out_dir)
    return report
