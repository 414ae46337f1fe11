"""HTML rendering of text explanations (paper 003 Fig. 4): one row per method, each
word's background green (raises the rating) or red (lowers it), its strength the
score relative to the row's largest magnitude; a method's selected words are boxed."""

from __future__ import annotations

import html

LABELS = {"smug": "SMUG", "smug_base": "SMUG<sub>base</sub>", "text_ig": "IG", "text_sis": "SIS"}
STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
table.smug-text { border-collapse: collapse; margin-bottom: 2em; }
table.smug-text td { padding: 0.35em 0.6em; vertical-align: top; border-bottom: 1px solid #ddd; }
td.method { font-weight: bold; white-space: nowrap; }
span.w { padding: 0.1em 0.15em; margin: 0 0.05em; border-radius: 3px; line-height: 1.9; }
span.sel { outline: 1.5px solid #333; }
.meta { color: #555; font-size: 0.9em; }
""".strip()


def word_color(score: float, scale: float) -> str:
    """CSS background: green for positive, red for negative, alpha = |score| / scale."""
    if scale <= 0 or score == 0:
        return "transparent"
    a = min(1.0, abs(score) / scale)
    return f"rgba(0, 160, 0, {a:.3f})" if score > 0 else f"rgba(210, 0, 0, {a:.3f})"


def render_row(words: list[str], scores: list[float], selected: list[bool] | None) -> str:
    scale = max((abs(s) for s in scores), default=0.0)
    spans = []
    for i, (w, s) in enumerate(zip(words, scores)):
        cls = "w sel" if selected is not None and selected[i] else "w"
        spans.append(f'<span class="{cls}" style="background:{word_color(s, scale)}" '
                     f'title="{s:+.4g}">{html.escape(w)}</span>')
    return " ".join(spans)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def render_explanation(e) -> str:
    """One table for a text explanation (``e.text``): a header line and one row per method."""
    t = e.text
    head = (f'<p class="meta">{html.escape(e.model)}: rating {t.rating:.3f} (explained: '
            f'{"rating" if t.direction == "positive" else "1 - rating"}); SMUG status {html.escape(e.status)}, '
            f'{e.objective if e.objective is not None else "-"} of {len(t.words)} words, certificate '
            f'{"valid" if e.certificate.get("valid") else "not valid"}; the masked text '
            f'{"keeps" if e.keeps_class else "does not keep"} the decision'
            f'{"" if e.masked_confidence is None else f" (masked rating {e.masked_confidence:.3f})"}</p>')
    warn = "".join(f'<p class="meta">warning: {html.escape(w)}</p>' for w in e.warnings)
    rows = []
    for r in t.rows:
        ms = r.measures
        rows.append(
            f'<tr><td class="method">{LABELS.get(r.method, html.escape(r.method))}</td>'
            f"<td>{render_row(t.words, r.scores, r.selected)}</td>"
            f'<td class="meta">sparsity {_fmt(ms.get("sparsity"))}<br>sufficiency {_fmt(ms.get("sufficiency"))}'
            f'<br>comprehensiveness {_fmt(ms.get("comprehensiveness"))}</td></tr>'
        )
    return f'{head}{warn}<table class="smug-text">{"".join(rows)}</table>'


def render_page(explanations: list) -> str:
    body = "\n".join(render_explanation(e) for e in explanations)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>smug text explanation</title>'
            f"<style>{STYLE}</style></head><body>\n"
            f'<p class="meta">green: raises the rating, red: lowers it; boxed: the words the method selects</p>\n'
            f"{body}\n</body></html>\n")
