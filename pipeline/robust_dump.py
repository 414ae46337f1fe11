"""Robust explanations as dumps another engine re-checks (issue 30): the question "is ``E``
robust?" for a model, an input and ``E`` (:mod:`smug.solver.robust_dump`: SMT-LIB2 exact, or an
LP-format MILP), with smug's dump header and end line (:mod:`smug.solver.dump_formats`), and the
counterexamples of a subset-minimal answer as plain data (:func:`answer_checks`), so that
:mod:`smug.debugging.robust_check` confirms an answer with z3 and onnxruntime only."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from smug.models.runtime import OnnxModel
from smug.pipeline.robust import pixel_grid, robust_query
from smug.pipeline.robust_config import RobustConfig
from smug.solver.dump_formats import end_line, header_lines
from smug.solver.robust_dump import robust_lp, robust_smtlib
from smug.solver.robust_explain import RobustExplanation

FORMATS = {"smt2": robust_smtlib, "lp": robust_lp}


def robust_dump(model: OnnxModel, x: np.ndarray, config: RobustConfig, fixed: np.ndarray, format: str = "smt2",
                target: int | None = None) -> str:
    """The question for ``E = fixed`` (bool per feature) as a self-describing dump in ``format``."""
    return dump_with_meta(model, x, config, fixed, format, target)[0]


def dump_with_meta(model: OnnxModel, x: np.ndarray, config: RobustConfig, fixed: np.ndarray, format: str = "smt2",
                   target: int | None = None) -> tuple[str, dict]:
    """:func:`robust_dump` and the facts of its header."""
    if format not in FORMATS:
        raise ValueError(f"a robust question is written as {' or '.join(FORMATS)}, not {format!r}")
    query = robust_query(model, x, config, target)
    fixed = np.asarray(fixed, bool)
    if fixed.shape != (query.n_vars,):
        raise ValueError(f"E must have one entry per feature ({query.n_vars}), got shape {fixed.shape}")
    meta = {"kind": "robust", "format": format, "model": model.name, "target": int(query.problem.target),
            "smug_version": sys.modules["smug"].__version__,
            "params": {"epsilon": config.epsilon, "window": config.window, "domain": list(config.domain)},
            "n_vars": int(query.n_vars), "grid": list(pixel_grid(model, config.window).shape),
            "fixed": np.flatnonzero(fixed).tolist(),
            "free_inputs": np.flatnonzero(query.free_inputs(fixed)).tolist(),
            "x": query.problem.x.tolist()}  # exact: a float's JSON text reads back as the same float
    body = FORMATS[format](query, fixed, header_lines(meta))
    return body + end_line(format, body), meta


def request_dump(request, format: str = "smt2", result: str | None = None) -> tuple[str, dict]:
    """``smug dump --method robust``: the question for the request's model and input, with ``E`` the
    mask of ``result`` (a result.json of the same request; default: no feature fixed, the whole
    epsilon-box)."""
    import json
    from pathlib import Path

    from smug.pipeline.inputs import load_image

    subject = load_image(request)
    config: RobustConfig = request.config
    grid = pixel_grid(subject.model, config.window)
    fixed = np.zeros(grid.shape, bool)
    if result is not None:
        try:
            doc = json.loads(Path(result).read_text())
        except (OSError, ValueError):
            raise ValueError(f"cannot read the result {result} as JSON") from None
        blocks = doc.get("mask_blocks") if isinstance(doc, dict) else None
        if doc.get("method") != "robust" or blocks is None:
            raise ValueError(f"{result} is not a robust answer with a mask")
        for r, c in blocks:
            if not (0 <= r < grid.shape[0] and 0 <= c < grid.shape[1]):
                raise ValueError(f"{result}'s block ({r}, {c}) is outside the {grid.shape} grid of this request")
            fixed[r, c] = True
    return dump_with_meta(subject.model, subject.x, config, fixed.ravel(), format, subject.target(request.target))


@dataclass(frozen=True)
class Justification:
    """Why feature ``feature`` of ``E`` stays: the dump of ``E`` without it and an input in that box
    (model-space values, flat) that reaches another class."""

    feature: int
    dump: str
    input: np.ndarray


def answer_checks(model: OnnxModel, x: np.ndarray, config: RobustConfig, answer: RobustExplanation,
                  target: int | None = None) -> tuple[str, list[Justification]]:
    """The SMT-LIB2 dump of ``answer``'s ``E`` (unsat: robust) and, per feature of ``E`` with a
    counterexample, the dump of ``E`` without it with that counterexample."""
    out = []
    for p, cex in sorted(answer.counterexamples.items()):
        without = answer.fixed.copy()
        without[p] = False
        out.append(Justification(p, robust_dump(model, x, config, without, "smt2", target), np.asarray(cex.input)))
    return robust_dump(model, x, config, answer.fixed, "smt2", target), out
