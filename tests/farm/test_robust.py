"""A robust (issue 30) farm job: the same answer as a local run, proven cardinality-minimal, over
2 x 2 pixel blocks."""

from __future__ import annotations

import numpy as np
import pytest

from smug.farm import Store, run
from smug.pipeline import ExplainRequest
from smug.pipeline import run as run_one

pytest.importorskip("distributed")


def test_robust_job_gives_the_local_answer(client, tiny_onnx, tmp_path):
    x = np.random.default_rng(3).uniform(0, 1, (1, 1, 4, 4)).astype(np.float32)
    request = ExplainRequest.build(x, str(tiny_onnx), method="robust", epsilon=0.25, mode="cardinality",
                                   window=2, timeout=20)
    local = run_one(request)
    assert local.status == "optimal" and local.objective == local.lower_bound > 0
    (result,) = list(run([request], store=tmp_path / "robust.sqlite", client=client))
    assert result.state == "done", result.reason
    with Store(tmp_path / "robust.sqlite") as store:
        e = store.explanation(result.job_id)
    assert e.method == "robust" and e.status == "optimal" and np.array_equal(e.mask, local.mask)
    assert e.n_vars == 4 and np.array_equal(e.pixel_mask, np.kron(e.mask, np.ones((2, 2), bool)))
