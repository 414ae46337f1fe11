"""SMUG word masks on a text model (paper 003 Sec. 5.3), with one row per method.

Rows (paper 003 Fig. 4): ``smug`` (minimal word mask, Eq. 4 relevance on the kept
words), ``smug_base`` (every word in a kept neuron's receptive field), ``text_ig`` (IG
on the embeddings) and ``text_sis`` (SIS over tokens).  Scores are signed relevance to
the *rating*: positive raises it; SMUG and SIS scores carry the sign of the explained
direction.  Each row's selection is the mask (smug, smug_base), the words whose IG score
supports the explained direction (text_ig), or the first sufficient subset (text_sis),
measured by :mod:`smug.metrics.text`.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np

from smug.baselines.attribution import attribute
from smug.encoders.text import TextEncoding, encode_text, masked_ids
from smug.metrics.text import Comprehensiveness, Sufficiency, WordSparsity
from smug.models.text_cnn import TokenizedText, ratings
from smug.deadline import Deadline
from smug.pipeline.explanation import Explanation, MethodRow, TextParts
from smug.pipeline.inputs import TextSubject
from smug.pipeline.keep_class import KEEP_BUDGET, Verdict, keep_decision
from smug.pipeline.request import ExplainRequest
from smug.pipeline.solve import solve_stage
from smug.pipeline.stages import Stages

MASKED_WORD = "zero embedding (= the padding token)"


def encode(request: ExplainRequest, subject: TextSubject, stages: Stages) -> TextEncoding:
    with stages.stage("encode"):
        enc = encode_text(subject.model, subject.tokens.ids, request.config.smug)
    stages.timings["ig"] = round(enc.ig.seconds, 4)
    stages.timings["encode"] = round(stages.timings["encode"] - enc.ig.seconds, 4)
    return enc


def decision(rating: float, masked_rating: float, direction: str, min_confidence: float | None = None) -> dict:
    """A text's decision on its masked form: the rating stays on the same side of 0.5 (and the
    explained score reaches ``min_confidence`` if given)."""
    score = masked_rating if direction == "positive" else 1.0 - masked_rating
    keeps = (masked_rating >= 0.5) == (rating >= 0.5) and (min_confidence is None or score >= min_confidence)
    return {"rating": masked_rating, "explained_score": score, "target_confidence": masked_rating,
            "keeps_class": bool(keeps), "margin": abs(masked_rating - 0.5) * (1 if keeps else -1)}


def keep_class_solve(request: ExplainRequest, subject: TextSubject, enc: TextEncoding, deadline: Deadline,
                     stages: Stages) -> tuple[TextEncoding, object, dict]:
    """Keep-class mode for a text (:mod:`smug.pipeline.keep_class`): the rating must stay on its side."""
    loop_deadline = deadline.earlier(Deadline.after(KEEP_BUDGET * request.timeout))

    def check(e: TextEncoding, mask) -> Verdict:
        masked = float(ratings(subject.model, masked_ids(e.ids, e.grid, mask)[None])[0])
        d = decision(e.rating, masked, e.direction, request.keep.min_confidence)
        return Verdict(d["keeps_class"], d["explained_score"], d["margin"])

    return keep_decision(enc, enc.layers.layer, enc.problem.x, request.config.smug, 0.0, check,
                         lambda problem: solve_stage(problem, request, loop_deadline, stages), loop_deadline,
                         request.keep)


def explain(request: ExplainRequest, subject: TextSubject, deadline: Deadline, stages: Stages) -> Explanation:
    enc = encode(request, subject, stages)
    t_solve = time.perf_counter()
    keep_report = None
    if request.keep is None:
        sol = solve_stage(enc.problem, request, deadline, stages)
    else:
        enc, sol, keep_report = keep_class_solve(request, subject, enc, deadline, stages)
    solve_s = time.perf_counter() - t_solve
    model, tt = subject.model, subject.tokens
    masked_rating = None
    if sol.mask is not None:
        masked_rating = float(ratings(model, masked_ids(tt.ids, enc.grid, sol.mask)[None])[0])
    opts = request.config
    with stages.stage("rows"):
        rows = tuple(_method_row(name, enc, sol, model, tt, solve_s, opts.sis_threshold) for name in opts.rows)
    parts = TextParts(text=tt.text, words=list(tt.words), unknown=list(tt.unknown), truncated=tt.truncated,
                      rating=enc.rating, direction=enc.direction, masked_rating=masked_rating, rows=rows)
    sign = 1.0 if enc.direction == "positive" else -1.0
    return Explanation(
        model=model.name, input="text", method=request.method, request=request.to_json(),
        target=0, target_name="rating", confidence=enc.rating,
        status=sol.status, objective=sol.objective, lower_bound=sol.lower_bound, n_vars=enc.problem.n_vars,
        proof=sol.proof, certificate=sol.certificate.summary() if sol.certificate else {"valid": False},
        masked_prediction={} if masked_rating is None else decision(
            enc.rating, masked_rating, enc.direction, None if request.keep is None else request.keep.min_confidence),
        ig={"steps": enc.ig.steps, "completeness_error": enc.ig.completeness_error, "f_input": enc.ig.f_input,
            "f_baseline": enc.ig.f_baseline, "score": "rating" if sign > 0 else "1 - rating"},
        encoding={"layer": "conv1d over embeddings", "kept_neurons": int(len(enc.neurons)),
                  "constraints": enc.problem.n_constraints, "mask_variables": enc.problem.n_vars,
                  "components": sol.components, "form": opts.smug.form, "backend": sol.backend,
                  "tie_break": sol.stats.get("tie_break"),
                  "masked_word": MASKED_WORD, "config": asdict(opts.smug),
                  **({} if keep_report is None else {"top_k": keep_report["constraints"]["top_k"],
                                                     "gamma": keep_report["constraints"]["gamma"],
                                                     "keep_class": keep_report})},
        timings={**stages.finish(sol.timings), **{f"row_{r.method}": round(r.seconds, 4) for r in rows}},
        warnings=tuple(tt.warnings()), text=parts)


def _method_row(method: str, enc: TextEncoding, sol, model, tt: TokenizedText, solve_s: float,
                sis_threshold: float | None) -> MethodRow:
    n, pos = tt.n_words, enc.grid.positions
    if method == "smug":
        selected = None if sol.mask is None else np.asarray(sol.mask, bool)
        scores = enc.saliency(sol.mask)[pos] if selected is not None else np.zeros(n)
        return measured_row(model, tt, enc.direction, method, scores, selected, solve_s,
                            {"status": sol.status, "objective": sol.objective})
    if method == "smug_base":
        base = enc.base_mask()
        return measured_row(model, tt, enc.direction, method, enc.saliency(base)[pos], base, enc.ig.seconds,
                            {"kept_neurons": int(len(enc.neurons))})
    sign = 1.0 if enc.direction == "positive" else -1.0
    if method == "text_ig":
        a = attribute(model, tt.model_input, 0, "text_ig")
        scores = a.map[:n]
        return measured_row(model, tt, enc.direction, method, scores, sign * scores > 0, a.seconds,
                            {k: a.params[k] for k in ("steps", "completeness_error")})
    a = attribute(model, tt.model_input, 0, "text_sis", direction=enc.direction, threshold=sis_threshold)
    selected = None
    if a.params["sets"]:
        selected = np.zeros(n, dtype=bool)
        selected[a.params["sets"][0]] = True
    info = {k: a.params[k] for k in ("threshold", "threshold_rule", "set_sizes", "empty_sufficient", "n_forward")}
    return measured_row(model, tt, enc.direction, method, a.map[:n], selected, a.seconds, info)


def measured_row(model, tt: TokenizedText, direction: str, method: str, scores: np.ndarray,
                 selected: np.ndarray | None, seconds: float, info: dict) -> MethodRow:
    """A row with its sparsity, sufficiency and comprehensiveness (:mod:`smug.metrics.text`)."""
    measures = {"sparsity": None, "sufficiency": None, "comprehensiveness": None}
    if selected is not None:
        sel = np.zeros(len(tt.ids), dtype=bool)
        sel[: tt.n_words] = selected
        measures = {"sparsity": WordSparsity()(tt.ids, sel),
                    "sufficiency": Sufficiency(direction)(model, tt.ids, sel),
                    "comprehensiveness": Comprehensiveness(direction)(model, tt.ids, sel)}
    return MethodRow(method=method, scores=[float(s) for s in scores],
                     selected=None if selected is None else [bool(s) for s in selected],
                     measures=measures, seconds=float(seconds), info=info)
