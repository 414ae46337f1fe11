"""The page of ``smug inspect --out`` (``index.html``), for a reader who has never seen smug: a title
(model, class, method, status), a table of the answer and the dump, the mask and maps laid over the
input with colour bars and one line each saying how to read the colours, then the explanations as
tables (is there a mask at all, why each block is kept, blocks every mask needs, the problem's
structure), and the raw report last, collapsed.  Every picture is a ``data:`` URI: one file."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass

from smug.rendering.colormap import MapScale, css_gradient

SHOWN = 40  # rows per table; the rest are counted
STYLE = """
body { font-family: sans-serif; margin: 1.5em; max-width: 1200px; color: #111; background: #fff; font-size: 16px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.25em; margin-top: 1.6em; }
p.lead, p.note { color: #333; max-width: 62em; }
table { border-collapse: collapse; margin: 0.6em 0 1em; }
td, th { border: 1px solid #bbb; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.maps { display: flex; flex-wrap: wrap; gap: 1.5em; }
figure { margin: 0; width: 340px; }
figure img { width: 340px; height: auto; image-rendering: pixelated; border: 1px solid #888; }
figcaption { font-size: 14px; color: #222; margin-top: 0.3em; }
figcaption b { display: block; font-size: 15px; }
.bar { display: flex; align-items: center; gap: 0.4em; font-size: 13px; margin-top: 0.3em; color: #222; }
.bar span.ramp { flex: 1; height: 12px; border: 1px solid #888; }
.verdict { font-weight: bold; }
details { margin-top: 2em; } summary { cursor: pointer; font-size: 15px; }
pre { font-size: 13px; background: #f4f4f4; padding: 1em; overflow-x: auto; }
""".strip()


@dataclass(frozen=True)
class MapFigure:
    """One picture of the page: a PNG, its title, what it shows and how to read its colours."""

    png: bytes = b""
    title: str = ""
    caption: str = ""
    rule: str = ""  # one line: how to read the colours
    scale: MapScale | None = None  # the colour bar's range and map (None: no bar)


def _e(value) -> str:
    return html.escape(str(value))


def table(head: list[str], rows: list[list], cls: str = "") -> str:
    """An HTML table (cells escaped; numbers right-aligned), cut to :data:`SHOWN` rows with a count of the rest."""
    shown = rows[:SHOWN]
    h = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in head) + "</tr>" if head else ""

    def cell(v) -> str:
        return f'<td class="num">{_e(v)}</td>' if isinstance(v, (int, float)) else f"<td>{_e(v)}</td>"

    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in shown)
    more = f'<p class="note">... and {len(rows) - SHOWN} more (all of them in the raw report below).</p>' \
        if len(rows) > SHOWN else ""
    return f'<table class="{cls}">{h}{body}</table>{more}'


def facts_table(facts: list[tuple[str, object]]) -> str:
    """Two columns: what, value."""
    return "<table class=\"facts\">" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts) + \
        "</table>"


def colour_bar(scale: MapScale) -> str:
    return (f'<div class="bar"><span>{scale.lo:.3g}</span><span class="ramp" style="background:'
            f'{css_gradient(scale.cmap)}"></span><span>{scale.hi:.3g}</span></div>')


def figure(f: MapFigure) -> str:
    src = "data:image/png;base64," + base64.b64encode(f.png).decode("ascii")
    bar = colour_bar(f.scale) if f.scale is not None else ""
    return (f'<figure><img alt="{_e(f.title)}" src="{src}">{bar}<figcaption><b>{_e(f.title)}</b>'
            f"{_e(f.caption)} <i>{_e(f.rule)}</i></figcaption></figure>")


def page(title: str, lead: str, facts: list[tuple[str, object]], figures: list[MapFigure],
         sections: list[tuple[str, str]], raw: dict) -> str:
    """The whole page: ``sections`` are (heading, HTML body) pairs, shown in order after the pictures."""
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{STYLE}</style>"
             f"</head><body><h1>{_e(title)}</h1><p class=\"lead\">{_e(lead)}</p>", facts_table(facts)]
    if figures:
        parts.append("<h2>Where the mask is</h2><div class=\"maps\">" + "".join(figure(f) for f in figures) + "</div>")
    parts += [f"<h2>{_e(h)}</h2>{body}" for h, body in sections]
    parts.append("<details><summary>The raw report (report.json)</summary><pre>"
                 + _e(json.dumps(raw, indent=2)) + "</pre></details></body></html>")
    return "\n".join(parts)
