"""pipeline/baseline.py: a baseline's loops stop at the request's timeout (no front end needs to
pass a deadline for a long baseline to end), and a sooner deadline still wins."""

from __future__ import annotations

import time

import numpy as np

from smug.pipeline import Deadline, ExplainRequest, run


def test_a_baseline_stops_at_the_requests_timeout_with_its_map_so_far():
    e = run(ExplainRequest.build(None, "mnist-mlp", method="rise", timeout=0.01))
    p = e.encoding["params"]
    assert p["stopped_at_deadline"] and 0 < p["n_masks_run"] < p["n_masks"]
    assert "stopped at the deadline" in e.proof and np.isfinite(e.image.saliency).all() and e.image.saliency.any()


def test_the_sooner_of_the_timeout_and_the_callers_deadline_stops_it():
    # ~30 s of masks on an idle 2-core machine: far more than the deadline leaves on any machine
    req = ExplainRequest.build(None, "mnist-mlp", method="rise", n_masks=200_000, timeout=600)
    t0 = time.time()
    e = run(req, deadline=Deadline(t0 + 1.5))
    p = e.encoding["params"]
    assert p["stopped_at_deadline"] and 0 < p["n_masks_run"] < p["n_masks"]
    assert time.time() - t0 < 15  # the deadline's 1.5 s, not the timeout's 600
