"""One answer per request through a real server (issue 31): the same request asked 4 times of
long-lived workers (warm models, reused solve hosts) gives the same mask bits as a local run."""

from __future__ import annotations

import numpy as np
import pytest

from smug.pipeline import ExplainRequest, run


def _bits(e) -> bytes:
    return np.packbits(np.asarray(e.mask, dtype=bool)).tobytes()


@pytest.mark.parametrize("model,params", [
    ("mnist-mlp", dict(method="smug", timeout=30)),
    ("mnist-mlp", dict(method="whole-network", timeout=30)),
    pytest.param("efficientnet-lite0", dict(method="smug", timeout=60), marks=pytest.mark.slow),
])
def test_the_same_request_gives_the_same_mask_bits(client, model, params):
    local = run(ExplainRequest.build(None, model, **params))
    assert local.status == "optimal" and local.encoding["tie_break"].startswith("canonical")
    for _ in range(4):
        e = client.explain(None, model, **params)
        assert e.status == "optimal" and e.certificate["valid"] is True
        assert _bits(e) == _bits(local)
