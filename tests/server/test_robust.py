"""Robust explanations (issue 30) over gRPC: the method, epsilon and mode travel, and the answer
is the library's."""

from __future__ import annotations

import numpy as np

from smug.pipeline import explain


def test_robust_request_over_grpc_is_the_library_answer(client, nets, tmp_path):
    data = nets.tiny(seed=0)
    model_id = client.register_model(data, name="tiny-robust").id
    path = tmp_path / "tiny.onnx"
    path.write_bytes(data)
    x = np.random.default_rng(0).uniform(0, 1, (1, 8, 8)).astype(np.float32)
    remote = client.explain(x, model=model_id, method="robust", epsilon=0.1, timeout=30.0)
    local = explain(x, str(path), method="robust", epsilon=0.1, timeout=30.0)
    info = remote.encoding["robust"]
    assert info["status"] == "subset-minimal" and info["epsilon"] == 0.1 and info["mode"] == "subset"
    assert remote.objective == local.objective > 0  # a non-trivial E: some pixels must stay
    assert np.array_equal(remote.mask, local.mask)
    assert info["counterexamples"] == remote.objective  # every pixel of E is justified
