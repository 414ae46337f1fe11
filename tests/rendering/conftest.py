"""Synthetic image answers shaped as the pipeline shapes them (the pictures only render, so no model is needed)."""

from __future__ import annotations

import numpy as np
import pytest

from smug.pipeline.explanation import Explanation, ImageParts


def make_answer(method: str = "smug", status: str = "optimal", objective: int | None = 3, lower_bound: int = 3,
                 signed: bool = False, keeps: bool | None = False, side: int = 28, window: int = 4,
                 target_name: str = "three") -> Explanation:
    """A 28 x 28 answer: a first-layer mask of ``objective`` blocks, a whole-network pixel mask or a baseline's map."""
    r = np.random.default_rng(0)
    picture = (r.random((side, side, 3)) * 255).astype(np.uint8)
    grid = side // window
    blocks = np.zeros((grid, grid), bool)
    if objective:
        blocks.ravel()[:objective] = True
    pixel = np.repeat(np.repeat(blocks, window, 0), window, 1)
    saliency = r.normal(size=(side, side)) if signed else np.where(pixel, r.random((side, side)) + 0.1, 0.0)
    parts = {"picture": picture, "saliency": saliency}
    if status != "map" and objective is not None:
        parts.update(mask=blocks, pixel_mask=pixel, base_mask=np.ones_like(blocks),
                     base_saliency=r.random((side, side)))
    config = {"window": window, "top_k": 20, "gamma": 0.0, "delta": 0.0}
    masked = {} if keeps is None else {"keeps_class": keeps, "target_confidence": 0.4}
    return Explanation(model="mnist-mlp", input="demo input", method=method, request={"config": config}, target=3,
                       target_name=target_name, confidence=0.973, status=status, objective=objective,
                       lower_bound=lower_bound, n_vars=grid * grid, proof="", certificate={"valid": True},
                       masked_prediction=masked, ig={}, encoding={}, timings={}, image=ImageParts(**parts))


@pytest.fixture
def image_answer():
    """:func:`make_answer`, for building answers inside a test."""
    return make_answer
