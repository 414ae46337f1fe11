"""The Python API: one call from an input to a certified explanation.

    >>> import smug
    >>> e = smug.explain("cat.jpg", model="efficientnet-lite0")
    >>> e.status, e.objective, e.certificate["valid"]
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from smug.clients.result import Explanation
from smug.encoders.saliency import base_mask, eq4_scores, smug_saliency
from smug.encoders.smug import SmugConfig, SmugEncoding, encode_smug
from smug.models.preprocess import check_array
from smug.models.zoo import load_model
from smug.solver.solve import Solution, solve


def load_input(model_name: str, source: str | os.PathLike | np.ndarray | None):
    """(model, zoo entry, model-space input, RGB picture, input label)."""
    model, entry = load_model(model_name)
    if source is None:
        if entry is None:
            raise ValueError("an input is required for a model outside the zoo")
        source = entry.demo_input
    if isinstance(source, np.ndarray):
        x = check_array(source, model.input_shape)
        picture = entry.preprocess.to_display(x) if entry else _grey(x)
        return model, entry, x, picture, "array"
    if entry is None:
        raise ValueError("image files need a zoo model (its preprocessing); pass a model-space array instead")
    x, picture = entry.preprocess.load(source)
    x = check_array(x, model.input_shape)
    return model, entry, x, picture, str(source)


def _grey(x: np.ndarray) -> np.ndarray:
    a = x if x.ndim == 3 else x.reshape(1, 1, -1)
    v = a.mean(axis=0)
    v = (255 * (v - v.min()) / max(1e-12, float(np.ptp(v)))).astype(np.uint8)
    return np.repeat(v[..., None], 3, axis=2)


def encode(
    source=None, model: str = "efficientnet-lite0", config: SmugConfig | None = None, target: int | None = None
) -> tuple[SmugEncoding, dict]:
    """Only the encoding (IG, neuron selection, Eq. 3), e.g. for dumps."""
    config = config or SmugConfig()
    m, entry, x, picture, label = load_input(model, source)
    enc = encode_smug(m, x, config, target=target)
    return enc, {"model": m, "entry": entry, "x": x, "picture": picture, "label": label}


def explain(
    source: str | os.PathLike | np.ndarray | None = None,
    model: str = "efficientnet-lite0",
    top_k: int = 3000,
    gamma: float = 0.0,
    window: int = 4,
    form: str = "linear",
    baseline: float = 0.0,
    ig_steps: int | None = None,
    backend: str = "auto",
    timeout: float = 60.0,
    target: int | None = None,
    out_dir: str | os.PathLike | None = None,
    solver: Callable | None = None,
) -> Explanation:
    """SMUG explanation of ``source`` (image path, model-space array, or the model's demo input).
    ``solver(fn, problem, backend, timeout) -> Solution`` replaces the isolated child-process
    solve (the gRPC service's workers solve in-process, with progress events)."""
    t0 = time.perf_counter()
    config = SmugConfig(top_k=top_k, gamma=gamma, window=window, form=form, baseline=baseline, ig_steps=ig_steps)
    enc, ctx = encode(source, model, config, target)
    t_enc = time.perf_counter()
    sol = (solver(solve, enc.problem, backend, timeout) if solver
           else _solve_isolated(solve, enc.problem, backend, ("highs", "z3"), timeout))
    result = _assemble(enc, ctx, config, sol, backend, timeout)
    timings = {
        "ig": round(enc.ig.seconds, 4),
        "encode": round(t_enc - t0 - enc.ig.seconds, 4),
        **{f"solve_{k}": round(v, 4) for k, v in sol.timings.items()},
        "total": round(time.perf_counter() - t0, 4),
    }
    result = _with_timings(result, timings)
    if out_dir is not None:
        result.save(Path(out_dir))
    return result


def _solve_isolated(fn, problem, backend: str, portfolio: tuple[str, ...], timeout: float) -> Solution:
    """Solve in child processes (memory cap, hard deadline): a solver crash never takes
    the caller down.  ``backend="portfolio"`` races ``portfolio``; bad arguments are
    reported here, in the caller's process."""
    from smug.solver.portfolio import run_isolated, run_portfolio

    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if backend == "portfolio":
        return run_portfolio(fn, problem, portfolio, timeout)
    if backend not in portfolio + ("auto",):
        raise ValueError(f"unknown backend {backend!r}; choose from {('auto', 'portfolio') + portfolio}")
    return run_isolated(fn, problem, backend, timeout)


def _with_timings(result: Explanation, timings: dict) -> Explanation:
    from dataclasses import replace

    return replace(result, timings=timings)


def _assemble(enc: SmugEncoding, ctx: dict, config: SmugConfig, sol: Solution, backend: str, timeout: float) -> Explanation:
    m, entry, x = ctx["model"], ctx["entry"], ctx["x"]
    grid = enc.grid
    logits = m.logits(x[None])[0]
    probs = _softmax(logits)
    names = entry.class_names() if entry else [str(i) for i in range(len(logits))]
    scores = eq4_scores(enc.layer, enc.neurons, enc.attribution, grid.spatial)
    base = base_mask(enc.layer, enc.neurons, grid)
    masked_pred: dict = {}
    pixel_mask = None
    if sol.mask is not None:
        pixel_mask = grid.to_pixels(sol.mask)
        masked_pred = _masked_prediction(m, enc.problem.masked_input(sol.mask), enc.target, names)
    return Explanation(
        model=m.name, input=ctx["label"], target=enc.target, target_name=names[enc.target],
        confidence=float(probs[enc.target]),
        config={**config.__dict__, "backend": backend, "timeout": timeout},
        status=sol.status, objective=sol.objective, lower_bound=sol.lower_bound, n_blocks=grid.n_vars,
        proof=sol.proof,
        mask=None if sol.mask is None else sol.mask.reshape(grid.shape),
        pixel_mask=pixel_mask,
        saliency=smug_saliency(scores, grid, sol.mask) if sol.mask is not None else np.zeros(grid.spatial),
        base_mask=base.reshape(grid.shape),
        base_saliency=smug_saliency(scores, grid, base),
        certificate=sol.certificate.summary() if sol.certificate else {"valid": False},
        masked_prediction=masked_pred,
        ig={"steps": enc.ig.steps, "completeness_error": enc.ig.completeness_error,
            "f_input": enc.ig.f_input, "f_baseline": enc.ig.f_baseline},
        encoding={"layer": enc.layer.kind, "activation": enc.layer.activation,
                  "kept_neurons": int(len(enc.neurons)), "constraints": enc.problem.n_constraints,
                  "components": sol.components, "form": config.form},
        timings={}, image=ctx["picture"],
    )


def _masked_prediction(model, masked: np.ndarray, target: int, names: list[str]) -> dict:
    """The model's forward pass on the masked input (informative, not a constraint)."""
    p = _softmax(model.logits(masked.reshape(model.input_shape)[None].astype(np.float32))[0])
    top = int(p.argmax())
    return {"class": top, "name": names[top], "confidence": float(p[top]),
            "target_confidence": float(p[target]), "keeps_class": top == target}


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def explain_network(
    source: str | os.PathLike | np.ndarray | None = None,
    model: str = "mnist-mlp",
    window: int = 1,
    delta: float = 0.0,
    baseline: float = 0.0,
    backend: str = "auto",
    timeout: float = 60.0,
    target: int | None = None,
    out_dir: str | os.PathLike | None = None,
    min_confidence: float | None = None,
    solver: Callable | None = None,
) -> Explanation:
    """Whole-network explanation (paper 003 Appendix A): the smallest mask whose masked
    input keeps the class with margin ``delta``; ``backend="portfolio"`` races them all;
    ``solver`` as in :func:`explain`."""
    from smug.encoders.blocks import BlockGrid
    from smug.encoders.network import encode_network
    from smug.solver.network_solve import solve_network

    t0 = time.perf_counter()
    m, entry, x, picture, label = load_input(model, source)
    problem = encode_network(m, x, window=window, delta=delta, baseline=baseline, target=target,
                             min_confidence=min_confidence)
    t_enc = time.perf_counter()
    sol = (solver(solve_network, problem, backend, timeout) if solver
           else _solve_isolated(solve_network, problem, backend, ("highs", "enum", "z3"), timeout))
    grid = BlockGrid(m.input_shape, window)
    probs = _softmax(m.logits(x[None])[0])
    names = entry.class_names() if entry else [str(i) for i in range(len(probs))]
    masked_pred, pixel_mask = {}, None
    if sol.mask is not None:
        pixel_mask = grid.to_pixels(sol.mask)
        masked_pred = _masked_prediction(m, problem.masked_input(sol.mask), problem.target, names)
    shown = pixel_mask.astype(np.float64) if pixel_mask is not None else np.zeros(grid.spatial)
    result = Explanation(
        model=m.name, input=label, target=problem.target, target_name=names[problem.target],
        confidence=float(probs[problem.target]),
        config={"method": "whole-network", "window": window, "delta": problem.delta, "baseline": baseline,
                "min_confidence": min_confidence,
                "backend": backend, "timeout": timeout},
        status=sol.status, objective=sol.objective, lower_bound=sol.lower_bound, n_blocks=grid.n_vars, proof=sol.proof,
        mask=None if sol.mask is None else sol.mask.reshape(grid.shape), pixel_mask=pixel_mask,
        saliency=shown, base_mask=np.ones(grid.shape, bool), base_saliency=np.ones(grid.spatial),
        certificate=sol.certificate.summary() if sol.certificate else {"valid": False},
        masked_prediction=masked_pred, ig={},
        encoding={"layers": [list(l.weight.shape) for l in problem.layers], **sol.stats},
        timings={"encode": round(t_enc - t0, 4), **{f"solve_{k}": round(v, 4) for k, v in sol.timings.items()},
                 "total": round(time.perf_counter() - t0, 4)},
        image=picture,
    )
    if out_dir is not None:
        result.save(Path(out_dir))
    return result
