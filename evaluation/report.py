"""``smug report``: the results of ``smug evaluate`` (a :class:`~smug.evaluation.store.EvalStore`) as one self-contained HTML page.

Tables in the form of paper 003 Table 1 (median LSC with quartiles, Win% with its Wilson
score interval, sparsity) and paper 000 Table I (time per method, stopping-criterion size
and time), insertion/deletion AUCs when computed, the alignment plot of paper 004 Fig. 2a
when the store holds that experiment, and a grid of images (paper 003 Fig. 1 / paper 000
Fig. 2 layout): the input, then each method's map (one colour map for every method, with
its colour bar) with its best LSC box and "LSC, a, c" above it.  Every picture is a base64
``data:`` URI: the page needs no other file.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path

import numpy as np

from smug.common import write_atomic
from smug.evaluation.store import EvalStore
from smug.metrics.winrate import mean_interval, win_rates
from smug.rendering.colormap import colorize, css_gradient

LABELS = {"smug": "SMUG", "smug_base": "SMUG<sub>base</sub>", "smug_keep": "SMUG<sub>keep</sub>",
          "integrated_gradients": "IG", "gradcam": "Grad-CAM", "centerbox": "CENTERBOX", "maxbox": "MAXBOX",
          "optbox": "OPTBOX", "gradient": "Gradient",
          "guided_backprop": "GBP", "rectgrad": "RectGrad", "lrp_zplus": "LRP z+", "dtd_zb": "DTD z<sup>B</sup>"}
PLAIN = {"smug_base": "SMUG_base", "smug_keep": "SMUG_keep"}
ORDER = ["smug", "smug_base", "smug_keep", "integrated_gradients", "gradcam", "centerbox", "maxbox", "optbox"]
DENSE = {"integrated_gradients", "gradcam", "gradient", "guided_backprop", "occlusion", "rise"}
PAPERS = {"000": "Konate et al., <i>A Comparison of Saliency Methods for Deep Learning Explainability</i>",
          "003": "Sahoo et al., <i>Scaling Symbolic Methods using Gradients for Neural Model Explanation</i> "
                 "(ICLR 2021)",
          "004": "Zheng et al., <i>Unifying Perplexing Behaviors in Modified BP Attributions through Alignment "
                 "Perspective</i>"}
MIN_N_INTERVAL = 10  # a mean's normal interval is shown from this many images on (fewer: the range)
SETTINGS = {"model": "model", "top_k": "SMUG: IG-ranked first-layer neurons kept (k)",
            "gamma": "SMUG: masked activation > gamma x original", "window": "SMUG: mask block size (pixels)",
            "timeout": "solver time limit (s)", "n_thresholds": "LSC: thresholds tried per map",
            "area_floor": "LSC: smallest box area (fraction of the image)",
            "optbox_cells": "OPTBOX: grid cells per side", "stopping": "stopping criterion computed",
            "stop_window": "stopping criterion: block size (pixels)",
            "insertion_deletion": "insertion/deletion curves computed", "id_steps": "insertion/deletion: steps",
            "lsc_uint8": "LSC: reference code's uint8 rounding per crop"}


def _q(values, p) -> float:
    return float(np.percentile(values, p)) if len(values) else float("nan")


def wilson_cell(k: int, n: int, level: float = 0.95) -> str:
    """``k`` of ``n`` as a percentage with its Wilson score interval (meaningful for any n, unlike
    the normal approximation, which collapses to ± 0 at 0 or n successes)."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return f"{100.0 * k / n:.1f} ({k}/{n}) [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def mean_cell(values: np.ndarray) -> str:
    """Mean ± the 95% normal interval's half width from :data:`MIN_N_INTERVAL` values on; below,
    the mean with the range and n (too few values for an interval to mean anything)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < MIN_N_INTERVAL:
        return f"{v.mean():.1f} (range {v.min():.1f}-{v.max():.1f}, n={v.size})"
    mu, hw = mean_interval(v)
    return f"{mu:.1f} ± {hw:.1f}"


def summary_tables(store: EvalStore, methods: list[str] | None = None, win_methods: list[str] | None = None,
                   html_labels: bool = False, only: set[str] | None = None) -> dict:
    """Formatted cells per method: LSC median (q25, q75), Win% ± CI (``win``: paper 003's normal
    approximation; ``win_wilson``: Wilson score interval), sparsity% (:func:`mean_cell`),
    median seconds, stopping size/time, insertion/deletion AUC, the share of images whose
    mask keeps the class (SMUG methods; ``keeps``, and the raw ``(kept, checked)`` counts in
    ``keeps_counts``) with the median target probability on the masked image; plus counts.
    ``only``: restrict to these image keys."""
    rows = [r for r in store.results() if only is None or r["image"] in only]
    present = sorted({r["method"] for r in rows}, key=lambda m: (ORDER.index(m) if m in ORDER else 99, m))
    methods = [m for m in (methods or present) if m in present] or present
    by: dict[str, list[dict]] = {m: [r for r in rows if r["method"] == m] for m in methods}
    table: dict[str, dict[str, float]] = {}
    for r in rows:
        table.setdefault(r["image"], {})[r["method"]] = r["lsc"]
    win_methods = [m for m in (win_methods or [m for m in methods if m != "optbox"]) if m in present]
    wins = win_rates(table, win_methods) if win_methods else {}
    lab = (lambda m: LABELS.get(m, html.escape(m))) if html_labels else (lambda m: PLAIN.get(m, LABELS.get(m, m)))
    out = {"methods": methods, "labels": [lab(m) for m in methods], "lsc": [], "win": [], "win_wilson": [],
           "sparsity": [],
           "seconds": [], "seconds_mean": [], "stop_size": [], "stop_seconds": [], "insertion": [], "deletion": [],
           "alignment": [], "kis": [], "keeps": [], "keeps_counts": {}, "masked_confidence": [],
           "counts": {m: len(by[m]) for m in methods},
           "n_complete": sum(1 for v in table.values() if all(m in v for m in win_methods)),
           "win_methods": win_methods}
    for m in methods:
        lsc = [r["lsc"] for r in by[m] if r["lsc"] is not None and math.isfinite(r["lsc"])]
        out["lsc"].append(f"{_q(lsc, 50):.2f} ({_q(lsc, 25):.2f}, {_q(lsc, 75):.2f})" if lsc else "-")
        w = wins.get(m)
        out["win"].append(f"{w.percent:.1f} ± {w.half_width:.1f}" if w and w.n else "-")
        out["win_wilson"].append(wilson_cell(w.wins, w.n) if w and w.n else "-")
        sp = [r["sparsity"] for r in by[m] if r["sparsity"] is not None]
        out["sparsity"].append("-" if m in DENSE or not sp else mean_cell(100.0 * np.asarray(sp)))
        secs = [r["seconds"] for r in by[m] if r["seconds"] is not None]
        out["seconds"].append(f"{_q(secs, 50):.3g}" if secs else "-")
        mu, _ = mean_interval(secs)
        sd = float(np.std(secs, ddof=1)) if len(secs) > 1 else 0.0
        out["seconds_mean"].append(f"{mu:.3g} ± {sd:.2g}" if secs else "-")
        ss = [r["stop_fraction"] for r in by[m] if r["stop_fraction"] is not None]
        st = [r["stop_seconds"] for r in by[m] if r["stop_seconds"] is not None]
        out["stop_size"].append(f"{100 * np.mean(ss):.1f}% ± {100 * np.std(ss):.1f}" if ss else "-")
        out["stop_seconds"].append(f"{np.mean(st):.3g} ± {np.std(st):.2g}" if st else "-")
        ia = [r["insertion_auc"] for r in by[m] if r["insertion_auc"] is not None]
        da = [r["deletion_auc"] for r in by[m] if r["deletion_auc"] is not None]
        extras = [json.loads(r["extra"]) if r["extra"] else {} for r in by[m]]
        for key in ("alignment", "kis"):
            v = [e[key] for e in extras if e.get(key) is not None]
            out[key].append(f"{np.mean(v):.3f} (n={len(v)})" if v else "-")
        kept = [r["keeps_class"] for r in by[m] if r.get("keeps_class") is not None]
        out["keeps_counts"][m] = (sum(kept), len(kept))
        out["keeps"].append(f"{100.0 * sum(kept) / len(kept):.0f}% ({sum(kept)}/{len(kept)})" if kept else "-")
        mc = [r["masked_confidence"] for r in by[m] if r.get("masked_confidence") is not None]
        out["masked_confidence"].append(f"{_q(mc, 50):.3f}" if mc else "-")
        out["insertion"].append(f"{np.mean(ia):.3f}" if ia else "-")
        out["deletion"].append(f"{np.mean(da):.3f}" if da else "-")
    return out


# ---- pictures --------------------------------------------------------------------
BOX = (230, 20, 60)  # the LSC box: red, absent from the colour map


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def boxed_png(map_png: bytes, box: list[int] | None, size: int = 160) -> bytes:
    """The stored map picture (magnitude over [0, max]) on the one colour map of every method,
    with the best LSC box outlined in red (a colour the map does not use)."""
    from PIL import Image, ImageDraw

    grey = np.asarray(Image.open(io.BytesIO(map_png)).convert("L"), dtype=np.float64) / 255.0
    img = Image.fromarray(colorize(grey)).resize((size, size), Image.NEAREST)
    if box:
        h, w = grey.shape
        t, l, b, r = box
        sy, sx = size / h, size / w
        ImageDraw.Draw(img).rectangle([l * sx, t * sy, r * sx - 1, b * sy - 1], outline=BOX, width=2)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def picture_png(picture: bytes, size: int = 160) -> bytes:
    from PIL import Image

    img = Image.open(io.BytesIO(picture)).convert("RGB").resize((size, size), Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def line_plot_svg(series: dict[str, list[tuple[float, float]]], title: str, xlabel: str, ylabel: str,
                  width: int = 680, height: int = 320) -> str:
    """A small inline SVG line plot (one polyline per series, with a legend)."""
    pts = [p for s in series.values() for p in s if math.isfinite(p[1])]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(0.0, min(p[1] for p in pts)), max(p[1] for p in pts)
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1
    L, R, T, B = 55, 210, 28, 40
    fx = lambda v: L + (v - x0) / (x1 - x0) * (width - L - R)  # noqa: E731
    fy = lambda v: height - B - (v - y0) / (y1 - y0) * (height - T - B)  # noqa: E731
    colors = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" class="plot">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
             f'<line x1="{L}" y1="{height - B}" x2="{width - R}" y2="{height - B}" stroke="black"/>',
             f'<line x1="{L}" y1="{T}" x2="{L}" y2="{height - B}" stroke="black"/>',
             f'<text x="{(L + width - R) / 2}" y="{height - 8}" text-anchor="middle" font-size="12">'
             f'{html.escape(xlabel)}</text>',
             f'<text x="14" y="{(T + height - B) / 2}" font-size="12" '
             f'transform="rotate(-90 14 {(T + height - B) / 2})" text-anchor="middle">{html.escape(ylabel)}</text>']
    for k in range(5):
        yv = y0 + k * (y1 - y0) / 4
        parts.append(f'<text x="{L - 4}" y="{fy(yv) + 4:.1f}" text-anchor="end" font-size="12">{yv:.2f}</text>')
        xv = x0 + k * (x1 - x0) / 4
        parts.append(f'<text x="{fx(xv):.1f}" y="{height - B + 14}" text-anchor="middle" '
                     f'font-size="12">{xv:.3g}</text>')
    keys = list(dict.fromkeys(name.split(" ")[-1] for name in series))  # same colour for the same method
    for i, (name, s) in enumerate(series.items()):
        c = colors[keys.index(name.split(" ")[-1]) % len(colors)]
        s = [p for p in s if math.isfinite(p[1])]
        dash = ' stroke-dasharray="5,3"' if name.startswith("random") else ""
        parts.append(f'<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="'
                     + " ".join(f"{fx(a):.1f},{fy(b):.1f}" for a, b in s) + '"/>')
        parts.append(f'<line x1="{width - R + 10}" y1="{T + 14 * i + 8}" x2="{width - R + 28}" y2="{T + 14 * i + 8}" '
                     f'stroke="{c}" stroke-width="2"{dash}/>')
        parts.append(f'<text x="{width - R + 32}" y="{T + 14 * i + 12}" font-size="12">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def alignment_series(store: EvalStore, kinds: tuple[str, ...] = ("pretrained", "random-gaussian")
                     ) -> dict[str, list[tuple[float, float]]]:
    """Mean alignment per (model kind, method) and level from the ``alignment``
    experiment (keys ``<kind>/<method>/<level>``), for the model ``kinds`` given."""
    acc: dict[tuple[str, int], list[float]] = {}
    for values in store.experiment("alignment").values():
        for key, v in values.items():
            kind, method, level = key.rsplit("/", 2)
            if kind not in kinds:
                continue
            acc.setdefault((f"{kind} {method}", int(level)), []).append(v)
    series: dict[str, list[tuple[float, float]]] = {}
    for (name, level), vs in sorted(acc.items()):
        series.setdefault(name, []).append((float(level), float(np.mean(vs))))
    return series


# ---- the page --------------------------------------------------------------------
CSS = """
body{font-family:sans-serif;margin:20px;color:#222;font-size:15px;max-width:1400px}
p.what{color:#333;max-width:60em}
table.summary{border-collapse:collapse;margin:10px 0 24px}
table.summary td,table.summary th{border:1px solid #bbb;padding:4px 10px;text-align:center}
table.summary th{background:#eee}
table.settings td,table.settings th{text-align:left}
table.grid td{padding:3px;text-align:center;font-size:13px;vertical-align:top}
table.grid img{display:block;width:160px;height:160px}
.cap{white-space:nowrap;font-size:13px}
sub,sup{font-size:max(12px,0.8em)}
.colorbar{display:inline-block;width:240px;height:14px;vertical-align:middle;border:1px solid #888;margin:0 6px}
.legend{font-size:14px;margin:6px 0 10px}
.box{display:inline-block;width:14px;height:10px;border:2px solid rgb%s;vertical-align:middle}
""" % (BOX,)


def _table(head: list[str], rows: list[tuple[str, list[str]]], cls: str = "summary") -> str:
    h = "<tr><th></th>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>" if head else ""
    body = "".join(f"<tr><th>{name}</th>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
                   for name, cells in rows)
    return f'<table class="{cls}">{h}{body}</table>'


def settings_table(config: dict) -> str:
    """The store's settings, one named row each (unknown keys by their own name)."""
    rows = [(html.escape(SETTINGS.get(k, k)), [json.dumps(v) if not isinstance(v, str) else v])
            for k, v in config.items()]
    return _table([], rows, "summary settings")


def colorbar_legend() -> str:
    """The grid's colour bar: every map drawn by the same rule, 0 to its own maximum."""
    return (f"<div class='legend'>map colour: 0<span class='colorbar' style='background:{css_gradient()}'>"
            "</span>each map's own max |score| (one colour map for every method); "
            "<span class='box'></span> the box with the best LSC</div>")


def render(store: EvalStore, methods: list[str] | None = None, max_images: int = 24, title: str = "smug report") -> str:
    """The HTML page for ``store``."""
    s = summary_tables(store, methods, html_labels=True)
    config = store.config() or {}
    ms = s["methods"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>Model <b>{html.escape(str(config.get('model', '?')))}</b>; {len(store.images())} images, "
             f"{s['n_complete']} with every method.</p>",
             "<details open><summary>Settings of this evaluation</summary>", settings_table(config), "</details>",
             "<h2>Does the map find a small box that keeps the class? (LSC, Win%, sparsity)</h2>",
             f"<p class='what'>As in Table 1 of {PAPERS['003']}: LSC (Eq. 5) = log(box area) &minus; log(class probability on the box's crop) for "
             "the best box around a thresholded map (lower is better); Win% is the share of images on which a "
             "method's LSC is the best; sparsity the share of non-zero pixels.</p>",
             _table(s["labels"], [("LSC &darr; median (q25, q75)", s["lsc"]),
                                  ("Win% &uarr; (wins/n) [95% Wilson interval]", s["win_wilson"]),
                                  ("Sparsity% &darr; mean", s["sparsity"])]),
             f"<p>Win% over {', '.join(LABELS.get(m, m) for m in s['win_methods'])} (ties count for every tied "
             "method). Sparsity is omitted for dense maps; its 95% interval (mean &plusmn; 1.96 sd/&radic;n) is "
             f"shown from {MIN_N_INTERVAL} images on, below that the range.</p>"]
    checked = [i for i, m in enumerate(ms) if s["keeps_counts"][m][1]]
    if checked:
        parts += ["<h2>Does the mask keep the decision? (SMUG methods)</h2>",
                  "<p class='what'>The share of images whose masked input the model still classifies as the "
                  "target.</p>",
                  _table([s["labels"][i] for i in checked],
                         [("images whose masked input keeps the class", [s["keeps"][i] for i in checked]),
                          ("target probability on the masked input, median",
                           [s["masked_confidence"][i] for i in checked])]),
                  "<p>The masked image (every block outside the mask at the model's zero) is run through the model "
                  "(float32): it keeps the class when the target stays the prediction. A SMUG mask is minimal for "
                  "its first-layer constraints, which do not hold the class; SMUG<sub>keep</sub> strengthens them "
                  "until the class is kept (or its time runs out).</p>"]
    parts += [
             "<h2>How long does each method take?</h2>",
             f"<p class='what'>As in Table I of {PAPERS['000']}: seconds per image, and the stopping criterion: the smallest share of the "
             "highest-scoring pixels that keeps the class, and the time to find it; insertion/deletion AUCs "
             "when computed.</p>",
             _table(s["labels"], [("time without stopping criterion (s), mean &plusmn; sd", s["seconds_mean"]),
                                  ("stopping-criterion size (% of pixels), mean &plusmn; sd", s["stop_size"]),
                                  ("stopping-criterion time (s), mean &plusmn; sd", s["stop_seconds"]),
                                  ("insertion AUC &uarr;", s["insertion"]), ("deletion AUC &darr;", s["deletion"])]),
             "<h2>Do the maps look like the input?</h2>",
             f"<p class='what'>After {PAPERS['004']}: input alignment: the cosine between the map and the input (Eq. 1); KIS: how much "
             "of the last layer's class evidence the map, fed to the model as an input, reproduces (Eq. 20; 1: "
             "as much as the input itself).</p>",
             _table(s["labels"], [("input alignment (Eq. 1), mean", s["alignment"]),
                                  ("KIS (Eq. 20), mean", s["kis"])]),
             "<p>An (H, W) map is broadcast over the input's channels.</p>"]
    series = alignment_series(store)
    if series:
        n = len(store.experiment("alignment"))
        parts += ["<h2>Input alignment under cascade substitution</h2>",
                  f"<p class='what'>Fig. 2a of {PAPERS['004']}: the mean alignment as the top layers are "
                  "replaced one by one.</p>",
                  line_plot_svg(series, f"alignment vs substituted layers ({n} images)", "N (layers from the top)",
                                "cosine(R, x)"),
                  "<p>Solid: pretrained model; dashed: randomly re-initialised (Gaussian) copy.</p>"]
    sanity = store.experiment("sanity")
    if sanity:
        acc: dict[tuple[str, int], list[float]] = {}
        for values in sanity.values():
            for key, v in values.items():
                meth, n = key.rsplit("/", 1)
                acc.setdefault((meth, int(n)), []).append(v)
        steps = sorted({n for _, n in acc})
        meths = list(dict.fromkeys(m for m, _ in acc))
        parts += [f"<h2>Parameter randomisation sanity check ({len(sanity)} images)</h2>",
                  _table([f"top {n} layers" for n in steps],
                         [(LABELS.get(m, html.escape(m)), [f"{np.mean(acc[(m, n)]):.3f}" if (m, n) in acc else "-"
                                                           for n in steps]) for m in meths]),
                  "<p>Mean Spearman correlation of |map| before and after randomising the top layers "
                  "(Gaussian, cumulative from the output).</p>"]
    results = {(r["image"], r["method"]): r for r in store.results()}
    images = store.images()[:max_images]
    parts += ["<h2>Examples</h2>", f"<p class='what'>In the layout of Fig. 1 of {PAPERS['003']}: the input, then "
              "each method's map and the box with its best LSC.</p>", colorbar_legend(),
              "<table class='grid'><tr><td>input: class, p = the model's<br>probability of it</td>"
              + "".join(f"<td>{LABELS.get(m, html.escape(m))}</td>" for m in ms) + "</tr>"]
    for im in images:
        cells = [f"<td><div class='cap'>{html.escape(im['target_name'] or '')}, p = {im['confidence']:.2f}</div>"
                 f"<img alt='input {html.escape(im['name'])}' src='{data_uri(picture_png(im['picture']))}'></td>"]
        for m in ms:
            r = results.get((im["image"], m))
            if r is None or r["map_png"] is None:
                cells.append("<td>-</td>")
                continue
            box = json.loads(r["box"]) if r["box"] else None
            cap = f"{r['lsc']:.2f}, a={r['area']:.2f}, c={r['confidence']:.2f}"
            if r.get("keeps_class") is not None:
                cap += ", keeps class" if r["keeps_class"] else ", loses class"
            cells.append(f"<td><div class='cap'>{cap}</div><img alt='{html.escape(m)} map' "
                         f"src='{data_uri(boxed_png(r['map_png'], box))}'></td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table><p>Numbers: above an input, its class and the model's probability p of that class on the "
                 "whole image; above a map, its LSC score, the area a of the best box and the confidence c on the "
                 "resized crop.</p>"
                 "</body></html>")
    return "\n".join(parts)


def write_report(db: str | Path, out: str | Path, methods: list[str] | None = None, max_images: int = 24) -> Path:
    db = Path(db)
    if not db.is_file():
        raise ValueError(f"no evaluation store at {db}: run smug evaluate first")
    store = EvalStore(db)
    try:
        page = render(store, methods, max_images)
    finally:
        store.close()
    return write_atomic(out, page.encode("utf-8"))
