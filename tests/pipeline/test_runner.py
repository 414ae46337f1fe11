"""``run``: one answer per request (issue 31) -- the same request, asked again in the same (warm)
process or of another backend, gives the same mask bits, each re-checked."""

from __future__ import annotations

import numpy as np
import pytest

from smug.pipeline import ExplainRequest, run
from smug.pipeline.inputs import load_image
from smug.solver.solve import CANONICAL


def _bits(e) -> bytes:
    return np.packbits(np.asarray(e.mask, dtype=bool)).tobytes()


@pytest.mark.parametrize("method,backends", [("smug", ("auto", "highs", "z3", "portfolio")),
                                             ("whole-network", ("auto", "enum", "highs"))])
def test_the_same_request_gives_the_same_mask_bits(method, backends):
    subject = load_image(ExplainRequest.build(None, "mnist-mlp"))
    seen = set()
    for backend in backends:
        for _ in range(4 if backend == backends[0] else 1):
            e = run(ExplainRequest.build(None, "mnist-mlp", method=method, backend=backend, timeout=60))
            assert e.status == "optimal" and e.encoding["tie_break"] == CANONICAL, (backend, e.proof)
            assert e.certificate["valid"] is True
            seen.add(_bits(e))
            if method == "whole-network":  # the mask keeps the digit: a forward pass of the model
                masked = np.where(e.pixel_mask[None], subject.x, 0.0).astype(np.float32)
                assert int(subject.model.logits(masked[None])[0].argmax()) == e.target
    assert len(seen) == 1
