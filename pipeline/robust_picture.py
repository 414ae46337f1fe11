"""The picture of a robust answer (issue 30), and on request the counterexample that justifies one
pixel of a subset-minimal ``E``: found again by the verifier in the box of ``E`` without that
pixel, replayed exactly and through onnxruntime before it is drawn (:mod:`smug.rendering.robust`)."""

from __future__ import annotations

import numpy as np

from smug.deadline import DEFAULT_TIMEOUT
from smug.models.runtime import OnnxModel
from smug.pipeline.robust import pixel_grid, robust_query, runtime_replay
from smug.pipeline.robust_config import RobustConfig
from smug.rendering.robust import robust_figure
from smug.solver.robust import COUNTEREXAMPLE, ROBUST, Verifier


def grey(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """RGB uint8 of a model-space input over its (H, W) pixels (channels averaged, stretched to [0, 255])."""
    v = np.asarray(x, np.float64).reshape(-1, *shape).mean(axis=0)
    span = float(v.max() - v.min()) or 1.0
    g = np.round(255 * (v - v.min()) / span).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def robust_picture(model: OnnxModel, x: np.ndarray, config: RobustConfig, fixed: np.ndarray,
                   pixel: tuple[int, int] | None = None, target: int | None = None, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """PNG of ``E = fixed`` (bool per feature) over the input; with ``pixel`` (row, column of a pixel
    of ``E``), also the counterexample in the box of ``E`` without that pixel's feature.  Raises
    ``ValueError`` when the pixel is not in ``E`` or ``E`` without it is proven robust."""
    import time

    query = robust_query(model, x, config, target)
    grid = pixel_grid(model, config.window)
    fixed = np.asarray(fixed, bool)
    pixel_mask = grid.to_pixels(fixed)
    shape = pixel_mask.shape
    change = None
    if pixel is not None:
        feature = int(np.asarray(grid.group()).reshape(-1, *shape)[0][pixel])
        if feature < 0 or not fixed[feature]:
            raise ValueError(f"pixel {pixel} is not in E: only a pixel of E has a counterexample")
        without = fixed.copy()
        without[feature] = False
        verdict = Verifier(query, runtime=runtime_replay(model)).verify(without, deadline=time.perf_counter() + timeout)
        if verdict.status == ROBUST:
            raise ValueError(f"E without pixel {pixel} is robust: the pixel is not needed")
        if verdict.status != COUNTEREXAMPLE:
            raise ValueError(f"no counterexample for pixel {pixel} within {timeout:g} s")
        delta = verdict.counterexample.input - query.problem.x
        change = delta.reshape(-1, *shape).sum(axis=0)
    title = f"{model.name}: class {query.problem.target}, robust E at epsilon {config.epsilon:g}"
    return robust_figure(grey(query.problem.x, shape), pixel_mask, config.epsilon, title, change, pixel)
