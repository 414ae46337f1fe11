"""The text API: one call from a text to a certified SMUG word mask, with baselines.

    >>> from smug.clients.text import explain_text
    >>> e = explain_text("a gorgeous, funny and deeply moving film")
    >>> e.status, e.selected_words("smug"), e.certificate["valid"]

Rows (one per method, paper 003 Fig. 4): ``smug`` (minimal word mask, Eq. 4
relevance on the kept words), ``smug_base`` (every word in a kept neuron's
receptive field), ``text_ig`` (IG on the embeddings) and ``text_sis`` (SIS over
tokens).  Scores are signed relevance to the *rating*: positive (green) raises it,
negative (red) lowers it; SMUG and SIS scores carry the sign of the explained
direction.  Each row's *selected words*: the mask (smug, smug_base), the words
whose IG score supports the explained direction (text_ig), the first --
most important -- sufficient subset (text_sis).  Each row gets the measures of
:mod:`smug.metrics.text` (sparsity, sufficiency, comprehensiveness).

Input behaviour: bytes must be UTF-8 and a text must have at least one word and
at least one word the vocabulary knows (else :class:`InputError`); a text longer
than the model length is truncated to its first ``L`` words and the explanation
says so in ``warnings``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from smug.clients.result import jsonable, write_files
from smug.models.preprocess import InputError
from smug.models.runtime import ModelError, OnnxModel
from smug.models.text_cnn import Tokenizer, TokenizedText, load_tokenizer

METHODS = ("smug", "smug_base", "text_ig", "text_sis")


@dataclass(frozen=True)
class MethodRow:
    """One method's explanation of the text: signed score and selection per word."""

    method: str
    scores: list[float]  # one per word, signed relevance to the rating
    selected: list[bool] | None  # one per word; None when the method found nothing
    measures: dict  # sparsity, sufficiency, comprehensiveness (None without a selection)
    seconds: float
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TextExplanation:
    """SMUG explanation of a text (paper 003 Sec. 3 and 5.3), with its certificate."""

    model: str
    text: str
    words: list[str]
    unknown: list[int]  # word positions read as <unk>
    truncated: bool
    warnings: list[str]
    rating: float
    direction: str  # positive: explains the rating; negative: explains 1 - rating
    config: dict
    status: str
    objective: int | None  # words kept by the minimal mask
    lower_bound: int
    proof: str
    certificate: dict
    masked_rating: float | None  # the model's rating of the masked text (informative)
    rows: list[MethodRow]
    ig: dict
    encoding: dict
    timings: dict

    @property
    def n_words(self) -> int:
        return len(self.words)

    def row(self, method: str) -> MethodRow:
        for r in self.rows:
            if r.method == method:
                return r
        raise KeyError(f"no row for method {method!r}; rows: {[r.method for r in self.rows]}")

    @property
    def mask(self) -> list[bool] | None:
        return self.row("smug").selected if any(r.method == "smug" for r in self.rows) else None

    def selected_words(self, method: str = "smug") -> list[str] | None:
        sel = self.row(method).selected
        return None if sel is None else [w for w, s in zip(self.words, sel) if s]

    def to_json(self) -> dict:
        out = asdict(self)
        out["n_words"] = self.n_words
        out.update(target=0, target_name="rating", confidence=self.rating)  # the image result's fields
        out["mask_words"] = self.selected_words("smug") if self.mask is not None else None
        return json.loads(json.dumps(out, default=jsonable))

    def to_html(self) -> str:
        from smug.rendering.text_html import render_page

        return render_page([self])

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write result.json and explanation.html (each atomically)."""
        return save_all([self], out_dir)


def save_all(explanations: list[TextExplanation], out_dir: str | os.PathLike) -> list[Path]:
    """result.json (one object, or a list for several texts) and explanation.html."""
    from smug.rendering.text_html import render_page

    body = explanations[0].to_json() if len(explanations) == 1 else [e.to_json() for e in explanations]
    files = {"result.json": json.dumps(body, indent=2).encode(), "explanation.html": render_page(explanations).encode()}
    return write_files(out_dir, files)


# ---- models -----------------------------------------------------------------------
def load_text_model(model: str) -> tuple[OnnxModel, Tokenizer, str]:
    """(ONNX model, tokenizer, name): a text zoo model, or an ``.onnx`` path whose
    tokenizer lies beside it as ``<stem>.json``."""
    from smug.models.zoo import ZOO, load_model

    entry = ZOO.get(model)
    if entry is not None:
        if getattr(entry, "kind", "image") != "text":
            raise ModelError(f"'{model}' is an image model; text needs a text model such as 'text-cnn'")
        m, _ = load_model(model)
        tok = load_tokenizer(Path(entry.onnx_path()).with_suffix(".json"))
    else:
        path = Path(model)
        if not model.endswith(".onnx") or not path.with_suffix(".json").is_file():
            raise ModelError(f"unknown text model '{model}': use 'text-cnn' or an .onnx file with its tokenizer "
                             f"as a .json beside it")
        m = OnnxModel.load(path)
        try:
            tok = load_tokenizer(path.with_suffix(".json"))
        except (KeyError, ValueError) as exc:
            raise ModelError(f"{path.with_suffix('.json')} holds no tokenizer: {exc}") from None
    if m.input_shape != (tok.length,):
        raise ModelError(f"the tokenizer pads to {tok.length} words but the model takes {m.input_shape}")
    return m, tok, m.name


def tokenize(tok: Tokenizer, text: str | bytes) -> TokenizedText:
    """Tokenize with the input checks of the module docstring."""
    tt = tok(text)
    if len(tt.unknown) == tt.n_words:
        raise InputError(f"none of the {tt.n_words} words of the text is in the model's vocabulary "
                         f"(every word would read as <unk>)")
    return tt


# ---- explanation ------------------------------------------------------------------
def explain_text(
    text: str | bytes,
    model: str = "text-cnn",
    top_k: int = 100,
    gamma: float = 0.0,
    form: str = "linear",
    backend: str = "auto",
    timeout: float = 60.0,
    ig_steps: int | None = None,
    direction: str = "auto",
    sis_threshold: float | None = None,
    methods: tuple[str, ...] | list[str] = METHODS,
    out_dir: str | os.PathLike | None = None,
) -> TextExplanation:
    """SMUG word mask of ``text`` (k = 100, gamma = 0: paper 003's text setting) and
    the rows of ``methods``; ``sis_threshold``: absolute SIS threshold on the
    explained score (default: 90 % of the gain over the empty text)."""
    from smug.clients.api import _solve_isolated
    from smug.encoders.text import TextSmugConfig, encode_text, masked_ids
    from smug.models.text_cnn import ratings
    from smug.solver.solve import solve

    t0 = time.perf_counter()
    unknown_methods = [m for m in methods if m not in METHODS]
    if unknown_methods or not methods:
        raise ValueError(f"unknown text methods {unknown_methods}; choose from {METHODS}")
    config = TextSmugConfig(top_k=top_k, gamma=gamma, form=form, direction=direction, ig_steps=ig_steps)
    m, tok, name = load_text_model(model)
    tt = tokenize(tok, text)
    t_tok = time.perf_counter()
    enc = encode_text(m, tt.ids, config)
    t_enc = time.perf_counter()
    sol = _solve_isolated(solve, enc.problem, backend, ("highs", "z3"), timeout)
    t_solve = time.perf_counter()
    n = tt.n_words
    pos = enc.grid.positions
    masked_rating = None
    if sol.mask is not None:
        masked_rating = float(ratings(m, masked_ids(tt.ids, enc.grid, sol.mask)[None])[0])

    rows: list[MethodRow] = []
    for meth in methods:
        if meth == "smug":
            sel = None if sol.mask is None else np.asarray(sol.mask, bool)
            scores = enc.saliency(sol.mask)[pos] if sel is not None else np.zeros(n)
            rows.append(_row(m, tt, enc.direction, "smug", scores, sel, t_solve - t_tok,
                             {"status": sol.status, "objective": sol.objective}))
        elif meth == "smug_base":
            base = enc.base_mask()
            rows.append(_row(m, tt, enc.direction, "smug_base", enc.saliency(base)[pos], base, t_enc - t_tok,
                             {"kept_neurons": int(len(enc.neurons))}))
        else:
            rows.append(_baseline_row(m, tt, enc.direction, meth, sis_threshold))
    timings = {"tokenize": round(t_tok - t0, 4), "ig": round(enc.ig.seconds, 4),
               "encode": round(t_enc - t_tok - enc.ig.seconds, 4),
               **{f"solve_{k}": round(v, 4) for k, v in sol.timings.items()},
               **{r.method: round(r.seconds, 4) for r in rows},
               "total": round(time.perf_counter() - t0, 4)}
    result = TextExplanation(
        model=name, text=tt.text, words=list(tt.words), unknown=list(tt.unknown), truncated=tt.truncated,
        warnings=tt.warnings(), rating=enc.rating, direction=enc.direction,
        config={**asdict(config), "backend": backend, "timeout": timeout, "sis_threshold": sis_threshold,
                "masked_word": "zero embedding (= the padding token)"},
        status=sol.status, objective=sol.objective, lower_bound=sol.lower_bound, proof=sol.proof,
        certificate=sol.certificate.summary() if sol.certificate else {"valid": False},
        masked_rating=masked_rating, rows=rows,
        ig={"steps": enc.ig.steps, "completeness_error": enc.ig.completeness_error, "f_input": enc.ig.f_input,
            "f_baseline": enc.ig.f_baseline, "score": "rating" if enc.direction == "positive" else "1 - rating"},
        encoding={"layer": "conv1d over embeddings", "kept_neurons": int(len(enc.neurons)),
                  "constraints": enc.problem.n_constraints, "mask_variables": enc.problem.n_vars,
                  "components": sol.components, "form": config.form},
        timings=timings,
    )
    if out_dir is not None:
        result.save(out_dir)
    return result


def _row(model, tt: TokenizedText, direction: str, method: str, scores: np.ndarray, selected: np.ndarray | None,
         seconds: float, info: dict) -> MethodRow:
    from smug.metrics.text import Comprehensiveness, Sufficiency, WordSparsity

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


def _baseline_row(model, tt: TokenizedText, direction: str, method: str, sis_threshold: float | None) -> MethodRow:
    from smug.baselines.attribution import attribute

    n = tt.n_words
    if method == "text_ig":
        a = attribute(model, tt.model_input, 0, "text_ig")
        sign = 1.0 if direction == "positive" else -1.0
        scores = a.map[:n]
        selected = sign * scores > 0
        info = {k: a.params[k] for k in ("steps", "completeness_error")}
    else:
        a = attribute(model, tt.model_input, 0, "text_sis", direction=direction, threshold=sis_threshold)
        scores = a.map[:n]
        selected = np.zeros(n, dtype=bool)
        if a.params["sets"]:
            selected[a.params["sets"][0]] = True
        else:
            selected = None
        info = {k: a.params[k] for k in ("threshold", "threshold_rule", "set_sizes", "empty_sufficient", "n_forward")}
    return _row(model, tt, direction, method, scores, selected, a.seconds, info)


def explain_texts(lines: list[str], **kwargs) -> list[TextExplanation]:
    """One explanation per line (all checked before any is explained)."""
    m, tok, _ = load_text_model(kwargs.get("model", "text-cnn"))
    for i, line in enumerate(lines, start=1):
        try:
            tokenize(tok, line)
        except InputError as exc:
            raise InputError(f"line {i}: {exc}" if len(lines) > 1 else str(exc)) from None
    return [explain_text(line, **kwargs) for line in lines]


# ---- command line (``smug explain --model text-cnn --text ...``) -------------------------
def cli_explain(a, argv: list[str]) -> int:
    """``smug explain`` for a text model: writes result.json and explanation.html to ``--out``."""
    import sys

    from smug.models.zoo import ZOO

    if a.text is not None and a.text_file is not None:
        raise InputError("give --text or --text-file, not both")
    if a.image is not None:
        raise InputError(f"'{a.model}' is a text model: pass --text or --text-file, not an image")
    if a.whole_network:
        raise InputError("--whole-network is for image models; text uses the first-layer SMUG encoding")
    if a.target not in (None, 0):
        raise InputError("a text model has one output (the rating): --target must be 0 or left out")
    if a.text_file is not None:
        if not Path(a.text_file).is_file():
            raise InputError(f"input file not found: {a.text_file}")
        from smug.models.text_cnn import TextInput

        lines = TextInput(a.model).read(a.text_file)
    elif a.text is not None:
        lines = [a.text]
    else:
        entry = ZOO.get(a.model)
        if entry is None:
            raise InputError("give --text or --text-file")
        lines = [entry.demo_input.read_text(encoding="utf-8").strip()]
    explicit_k = any(s == "--top-k" or s.startswith("--top-k=") for s in argv)
    methods = METHODS if a.method == "smug" else ("smug", a.method)
    es = explain_texts(lines, model=a.model, top_k=a.top_k if explicit_k else 100, gamma=a.gamma, form=a.form,
                       backend=a.backend, timeout=a.timeout, ig_steps=a.ig_steps, methods=methods)
    for i, e in enumerate(es, start=1):
        for w in e.warnings:
            print(f"smug: warning: {'' if len(es) == 1 else f'line {i}: '}{w}", file=sys.stderr)
    save_all(es, a.out)
    summary = [{"rating": round(e.rating, 4), "explains": e.ig["score"], "status": e.status,
                "words": f"{e.objective} of {e.n_words}", "mask_words": e.selected_words("smug") if e.mask else None,
                "certificate_valid": e.certificate["valid"], "truncated": e.truncated,
                "seconds": e.timings["total"]} for e in es]
    print(json.dumps({"texts": summary if len(es) > 1 else summary[0], "out": str(a.out)}, indent=2))
    return 0 if all(e.status in ("optimal", "feasible") for e in es) else 1
