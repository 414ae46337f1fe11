"""HTML rendering of text explanations (paper 003 Fig. 4): one row per method, each word's
background green (raises the rating) or red (lowers it), its strength the score relative to
the row's largest magnitude, the signed score printed under the word; a method's selected
words are boxed.  Each explanation has a heading (model, predicted class, method, status)
and the page a legend; every word's text colour is the one of black and white that contrasts
more with its background."""

from __future__ import annotations

import html

from smug.rendering.colormap import contrast

LABELS = {"smug": "SMUG", "smug_base": "SMUG<sub>base</sub>", "text_ig": "IG", "text_sis": "SIS"}
GREEN, RED = (0, 160, 0), (210, 0, 0)  # raises / lowers the rating
DARK, LIGHT = (0, 0, 0), (255, 255, 255)  # either reads at >= 4.58:1 on any background
STYLE = """
.smug-text-page { font-family: sans-serif; margin: 1.5em; color: #000; background: #fff; font-size: 16px; }
.smug-text-page h1 { font-size: 1.5em; } .smug-text-page h2 { font-size: 1.2em; margin-top: 1.6em; }
table.smug-text { border-collapse: collapse; margin-bottom: 1.5em; }
table.smug-text td { padding: 0.45em 0.6em; vertical-align: top; border-bottom: 1px solid #ccc; }
table.smug-text td.method { font-weight: bold; white-space: nowrap; }
.smug-text-page span.w { display: inline-flex; flex-direction: column; align-items: center; padding: 0.1em 0.25em;
         margin: 0.15em 0.05em; border-radius: 3px; border: 2px solid transparent; vertical-align: top; }
.smug-text-page span.w small { font-size: 12px; line-height: 1.3; }
.smug-text-page span.sel { border-color: #000; }
.smug-text-page span.unk { text-decoration: underline dotted; }
.smug-text-page .meta { color: #333; font-size: 0.95em; }
.smug-text-page .legend { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: center; margin: 0.5em 0 1em;
                          font-size: 15px; }
.smug-text-page sub { font-size: max(12px, 0.75em); }
""".strip()


def word_color(score: float, scale: float) -> str:
    """CSS background: green for positive, red for negative, alpha = |score| / scale."""
    if scale <= 0 or score == 0:
        return "transparent"
    a = min(1.0, abs(score) / scale)
    r, g, b = GREEN if score > 0 else RED
    return f"rgba({r}, {g}, {b}, {a:.3f})"


def text_color(score: float, scale: float) -> str:
    """The text colour (black or white) with the higher contrast on :func:`word_color` over white."""
    a = 0.0 if scale <= 0 or score == 0 else min(1.0, abs(score) / scale)
    base = GREEN if score > 0 else RED
    background = [a * c + (1 - a) * 255 for c in base]
    dark = contrast(DARK, background) >= contrast(LIGHT, background)
    return "#%02x%02x%02x" % (DARK if dark else LIGHT)


def _score(s: float) -> str:
    return "0" if s == 0 else f"{s:+.2g}"


def render_row(words: list[str], scores: list[float], selected: list[bool] | None,
               unknown: frozenset[int] = frozenset()) -> str:
    """One method's row: each word with its colour and score; ``unknown`` positions underlined (out of vocabulary)."""
    scale = max((abs(s) for s in scores), default=0.0)
    spans = []
    for i, (w, s) in enumerate(zip(words, scores)):
        cls = ("w sel" if selected is not None and selected[i] else "w") + (" unk" if i in unknown else "")
        spans.append(f'<span class="{cls}" style="background:{word_color(s, scale)};color:{text_color(s, scale)}" '
                     f'title="{s:+.4g}">{html.escape(w)}<small>{_score(s)}</small></span>')
    return " ".join(spans)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def heading(e) -> str:
    """Model, predicted class (the rating's side of 0.5), method and status."""
    t = e.text
    side = "positive" if t.rating >= 0.5 else "negative"
    return (f"<h2>{html.escape(e.model)}: {side} (rating {t.rating:.3f}) &middot; method "
            f"{html.escape(e.method)} &middot; status {html.escape(e.status)}</h2>")


def render_explanation(e) -> str:
    """A heading, a line of facts and one table row per method for a text explanation (``e.text``)."""
    t = e.text
    head = (f'<p class="meta">Explained: {"the rating" if t.direction == "positive" else "1 - rating"}; SMUG keeps '
            f'{e.objective if e.objective is not None else "-"} of {len(t.words)} words, certificate '
            f'{"valid" if e.certificate.get("valid") else "not valid"}; the masked text '
            f'{"keeps" if e.keeps_class else "does not keep"} the decision'
            f'{"" if e.masked_confidence is None else f" (masked rating {e.masked_confidence:.3f})"}.</p>')
    warn = "".join(f'<p class="meta">warning: {html.escape(w)}</p>' for w in e.warnings)
    unknown = sorted(set(t.unknown))
    vocab = ("Words the model does not know (out of its vocabulary, read as one unknown-word token; underlined "
             "dotted): " + ", ".join(f"&ldquo;{html.escape(t.words[i])}&rdquo;" for i in unknown)
             if unknown else "Every word is in the model's vocabulary.")
    head += f'<p class="meta">{vocab}</p>'
    rows = []
    for r in t.rows:
        ms = r.measures
        rows.append(
            f'<tr><td class="method">{LABELS.get(r.method, html.escape(r.method))}</td>'
            f"<td>{render_row(t.words, r.scores, r.selected, frozenset(unknown))}</td>"
            f'<td class="meta">sparsity {_fmt(ms.get("sparsity"))}<br>sufficiency {_fmt(ms.get("sufficiency"))}'
            f'<br>comprehensiveness {_fmt(ms.get("comprehensiveness"))}</td></tr>'
        )
    return f'{heading(e)}{head}{warn}<table class="smug-text">{"".join(rows)}</table>'


MEASURES = ('<p class="meta">Measures of a method\'s selected words (boxed), on the explained score s (the rating, '
            'or 1 &minus; rating for a negative text): <b>sparsity</b>: selected words / words; <b>sufficiency</b>: '
            's(text) &minus; s(selected words only), lower is better, and negative when the selected words alone score '
            'higher than the whole text; <b>comprehensiveness</b>: s(text) &minus; s(text without them), higher is '
            'better; &ldquo;-&rdquo;: the method selected nothing.</p>')


def legend() -> str:
    """What the colours, the numbers and the boxes mean."""
    def swatch(score: float, text: str, note: str, extra: str = "") -> str:
        return (f'<span class="w" style="background:{word_color(score, 1.0)};color:{text_color(score, 1.0)};{extra}">'
                f"{text}<small>{note}</small></span>")

    return ('<div class="legend"><span>Legend:</span>'
            f'{swatch(1.0, "word", "raises the rating")}{swatch(-1.0, "word", "lowers the rating")}'
            f'{swatch(0.0, "word", "selected by the method", "border-color:#000")}'
            "<span>colour strength: |score| relative to the row's largest; the number under a word: its score "
            "(signed); underlined dotted: a word the model does not know</span></div>" + MEASURES)


def render_fragment(explanations: list) -> str:
    """The page's content with its (scoped) style, for embedding (a notebook's display)."""
    return (f'<div class="smug-text-page"><style>{STYLE}</style>{legend()}\n'
            + "\n".join(render_explanation(e) for e in explanations) + "</div>")


def render_page(explanations: list) -> str:
    """A whole HTML page (``explanation.html``)."""
    body = "\n".join(render_explanation(e) for e in explanations)
    title = "smug text explanation" + ("s" if len(explanations) > 1 else "")
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{title}</title>'
            f'<style>{STYLE}</style></head><body class="smug-text-page">\n<h1>{title}</h1>\n{legend()}\n'
            f"{body}\n</body></html>\n")
