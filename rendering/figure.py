"""One readable figure per image answer, for a reader who has never seen smug: a title (model,
class, method, status), what the answer claims (the mask's size and what is proven about it, or
that a baseline's map proves nothing), whether the masked input keeps the decision, and panels
laid over the input with a colour bar and the colour rule stated under them.

* a first-layer SMUG answer: input | kept blocks (outlined, the rest faded) | Eq. 4 saliency over the input
* a whole-network answer: input | kept pixels (it has no per-pixel score, so no saliency panel)
* a baseline: input | its map over the input (nothing is kept or proven)

Every map is coloured by the rules of :mod:`smug.rendering.colormap` (signed maps diverging at 0,
magnitudes sequential); no rank squeezing: a flat map looks flat and a peaked one peaked.
Explanations are read by their attributes only (``model``, ``method``, ``status``, ``image``, ...),
so this module needs nothing from the pipeline.
"""

from __future__ import annotations

import io
import textwrap
from dataclasses import dataclass

import numpy as np

from smug.rendering.colormap import FADED, MapScale, map_scale
from smug.rendering.pictures import kept_region, overlay

DPI = 100
PANEL = 3.7  # inches per panel: 370 px at 100 dpi
FONT = 12  # points: every text on a figure


@dataclass(frozen=True)
class AnswerFacts:
    """What the figure says in words: a title, the claim lines and the panels to draw."""

    title: str
    lines: tuple[str, ...]
    panels: tuple[str, ...]  # of "input", "kept", "saliency", "map"


def class_phrase(e) -> str:
    """``class 284 'Siamese_cat' (p = 0.977)``: the target with its name when it has one."""
    name = f" '{e.target_name}'" if e.target_name and e.target_name != str(e.target) else ""
    return f"class {e.target}{name} (p = {e.confidence:.3f})"


def mask_unit(e) -> str:
    """What a mask variable is: ``pixels`` or ``blocks of w x w pixels``."""
    window = int(e.constraints.get("window") or 1)
    return "pixels" if window == 1 else f"blocks of {window}x{window} pixels"


def unit_word(e) -> str:
    """``pixels`` or ``blocks``."""
    return mask_unit(e).split(" ")[0]


def claim(e) -> str:
    """The answer's mask and what is proven about it, in one line."""
    if e.status == "map":
        return "a baseline's attribution map: nothing is kept, solved or proven"
    if e.objective is None:
        return f"no mask (status {e.status}): the solver found none in its time"
    kept = f"kept {e.objective} of {e.n_vars} {mask_unit(e)}"
    c = e.constraints
    robust = (e.encoding or {}).get("robust") if e.method == "robust" else None
    if robust is not None:
        fixed = (f"kept {e.objective} of {e.n_vars} {mask_unit(e)}: with them fixed, every input within "
                 f"epsilon = {robust['epsilon']:g} of the rest keeps the class (proven by {robust['proof']})")
        if e.status == "optimal":
            return f"{fixed}; proven the fewest"
        minimal = ("subset-minimal (each kept one has a replayed counterexample); "
                   if robust["status"] == "subset-minimal" else "")
        return f"{fixed}; {minimal}not proven the fewest: proven lower bound {e.lower_bound}"
    if e.method == "whole-network":
        question = (f"the fewest whose masked input keeps the class (the target's logit above every other by more "
                    f"than delta = {c.get('delta') or 0:g})")
    elif c.get("top_k") is not None and c.get("gamma") is not None:
        question = (f"minimal for its constraints (top-{c['top_k']} first-layer neurons kept above "
                    f"gamma = {c['gamma']:g} x their value)")
    else:
        question = f"minimal for the question of method {e.method}"
    if e.status == "optimal":
        return f"{kept}, proven {question}"
    return f"{kept}; not proven minimal: proven lower bound {e.lower_bound}"


def decision(e) -> str:
    """Whether the masked input keeps the model's decision."""
    if e.keeps_class is None:
        return ""
    p = "" if e.masked_confidence is None else f" (target p = {e.masked_confidence:.3f} on it)"
    return f"the masked input {'keeps' if e.keeps_class else 'does NOT keep'} the decision{p}"


def answer_facts(e) -> AnswerFacts:
    """The words and panels of an image answer ``e``."""
    title = f"{e.model}: {class_phrase(e)}  -  method {e.method}  -  status {e.status}"
    lines = tuple(x for x in (claim(e), decision(e)) if x)
    if e.status == "map":
        panels = ("input", "map")
    elif e.image.pixel_mask is None:
        panels = ("input",)
    elif e.method in ("whole-network", "robust"):  # no per-pixel score: the mask is the answer
        panels = ("input", "kept")
    else:
        panels = ("input", "kept", "saliency")
    return AnswerFacts(title, lines, panels)


def wrapped(lines, width_inches: float) -> str:
    """``lines`` joined by newlines, each wrapped to the figure's width at :data:`FONT` points."""
    chars = max(40, int(width_inches * 72 / (FONT * 0.55)))
    return "\n".join(textwrap.fill(line, chars) for line in lines)


def rule_lines(rules: list[str], width_inches: float) -> str:
    """The colour rules in use, each once, one a line, for the bottom of a figure."""
    return wrapped(list(dict.fromkeys(rules)), width_inches)


def bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def interpolation(picture: np.ndarray) -> str:
    """Small inputs (MNIST) are drawn as pixels, photos smoothly."""
    return "nearest" if np.shape(picture)[0] < 64 else "antialiased"


def draw_map(fig, ax, picture: np.ndarray, saliency: np.ndarray, support: np.ndarray | None) -> MapScale:
    """The map over the input on ``ax`` with its colour bar; returns the scale (its rule goes under the figure)."""
    import matplotlib
    from matplotlib.colors import Normalize

    scale = map_scale(saliency)
    ax.imshow(overlay(picture, saliency, support, scale), interpolation=interpolation(picture))
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(Normalize(scale.lo, scale.hi), scale.cmap), ax=ax, shrink=0.85)
    bar.set_label(scale.label, fontsize=FONT)
    bar.ax.tick_params(labelsize=FONT - 1)
    return scale


def outline(ax, pixel_mask: np.ndarray) -> None:
    """The mask's border in red (matplotlib outlines grids of at least 2 x 2: a flat input's is not)."""
    m = np.asarray(pixel_mask)
    if m.any() and not m.all() and min(m.shape) > 1:
        ax.contour(m.astype(float), levels=[0.5], colors="red", linewidths=1.5)


def draw_answer(fig, e) -> AnswerFacts:
    """Draw the answer ``e`` into the matplotlib figure ``fig`` (see the module docstring)."""
    facts = answer_facts(e)
    picture, image = np.asarray(e.image.picture), e.image
    axes = np.atleast_1d(fig.subplots(1, len(facts.panels)))
    rules = []
    for ax, panel in zip(axes, facts.panels):
        bare(ax)
        if panel == "input":
            ax.imshow(picture, interpolation=interpolation(picture))
            ax.set_title("input", fontsize=FONT)
        elif panel == "kept":
            ax.imshow(kept_region(picture, image.pixel_mask), interpolation=interpolation(picture))
            outline(ax, image.pixel_mask)
            ax.set_title(f"kept {unit_word(e)}: {e.objective} (red outline)", fontsize=FONT)
            rules.append(FADED)
        elif panel == "saliency":
            rules.append(draw_map(fig, ax, picture, image.saliency, image.pixel_mask).rule)
            ax.set_title("saliency (Eq. 4) over the input", fontsize=FONT)
        else:
            rules.append(draw_map(fig, ax, picture, image.saliency, None).rule)
            ax.set_title(f"{e.method} map over the input", fontsize=FONT)
    width = fig.get_size_inches()[0]
    fig.suptitle(wrapped((facts.title, *facts.lines), width), fontsize=FONT)
    if rules:
        fig.supxlabel(rule_lines(rules, width), fontsize=FONT)
    return facts


def figure_size(panels: int, rows: int = 1, extra: float = 1.4) -> tuple[float, float]:
    """Inches for ``rows`` x ``panels`` panels plus room for the title and the rule lines."""
    return max(PANEL * panels + 1.0, 9.0), PANEL * rows + extra


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def answer_size(e) -> tuple[float, float]:
    """The answer figure's size in inches."""
    return figure_size(len(answer_facts(e).panels))


def answer_figure(e) -> bytes:
    """PNG of :func:`draw_answer` (a bare matplotlib figure: no pyplot state, no backend switched)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=answer_size(e), dpi=DPI, layout="constrained")
    draw_answer(fig, e)
    return to_png(fig)
