"""One answer per request through the farm (issue 31): the same request in 4 runs (a store each,
so that none is skipped) on warm Dask workers gives the same mask bits as a local run."""

from __future__ import annotations

import numpy as np
import pytest

from smug.farm import Store, run
from smug.pipeline import ExplainRequest
from smug.pipeline import run as run_one

pytest.importorskip("distributed")


@pytest.mark.parametrize("model,params", [
    ("mnist-mlp", dict(method="smug", timeout=30)),
    ("mnist-mlp", dict(method="whole-network", timeout=30)),
    pytest.param("efficientnet-lite0", dict(method="smug", timeout=60), marks=pytest.mark.slow),
])
def test_the_same_request_gives_the_same_mask_bits(client, tmp_path, model, params):
    request = ExplainRequest.build(None, model, **params)
    local = run_one(request)
    assert local.status == "optimal"
    for i in range(4):
        db = tmp_path / f"run{i}.sqlite"
        (result,) = list(run([request], store=db, client=client))
        assert result.state == "done", result.reason
        with Store(db) as store:
            e = store.explanation(result.job_id)
        assert e.status == "optimal" and np.array_equal(e.mask, local.mask)
