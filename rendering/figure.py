"""One readable figure per image answer, for a reader who has never seen smug: a title (model,
class, method, status), what the answer claims (the mask's size and what is proven about it, or
that a baseline's map proves nothing), whether the masked input keeps the decision, and panels
laid over the input with a colour bar and the colour rule stated under them.

* a first-layer SMUG answer: input | kept blocks (outlined, the rest faded) | Eq. 4 saliency over the input
* a whole-network answer: input | kept pixels (it has no per-pixel score, so no saliency panel)
* a baseline: input | its map over the input (nothing is kept or proven)

Every map is coloured by the rules of :mod:`smug.rendering.colormap` (signed maps diverging at 0,
magnitudes sequential); no rank squeezing: a flat map looks flat and a peaked one peaked.  The figure
is a :class:`smug.rendering.sheet.Sheet` (words and panels as data, drawn by Pillow).
Explanations are read by their attributes only (``model``, ``method``, ``status``, ``image``, ...),
so this module needs nothing from the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smug.rendering.colormap import FADED, map_scale
from smug.rendering.pictures import kept_region, overlay
from smug.rendering.sheet import Panel, Sheet, png


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


def map_panel(caption: str, picture: np.ndarray, saliency: np.ndarray, support: np.ndarray | None) -> Panel:
    """A map over the input as a panel with its colour bar (its rule: ``panel.scale.rule``)."""
    scale = map_scale(saliency)
    return Panel(caption, overlay(picture, saliency, support, scale), scale=scale)


def answer_sheet(e) -> Sheet:
    """The answer ``e`` as a sheet (see the module docstring)."""
    facts = answer_facts(e)
    picture, image = np.asarray(e.image.picture), e.image
    panels, rules = [], []
    for panel in facts.panels:
        if panel == "input":
            panels.append(Panel("input", picture))
        elif panel == "kept":
            panels.append(Panel(f"kept {unit_word(e)}: {e.objective} (red outline)",
                                kept_region(picture, image.pixel_mask), outline=image.pixel_mask))
            rules.append(FADED)
        else:
            caption = "saliency (Eq. 4) over the input" if panel == "saliency" else f"{e.method} map over the input"
            shown = map_panel(caption, picture, image.saliency, image.pixel_mask if panel == "saliency" else None)
            panels.append(shown)
            rules.append(shown.scale.rule)
    return Sheet((facts.title, *facts.lines), tuple(panels), tuple(rules))


def answer_figure(e) -> bytes:
    """PNG of :func:`answer_sheet`."""
    return png(answer_sheet(e))
