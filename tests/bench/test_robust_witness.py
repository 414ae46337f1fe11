"""Marabou's *sat* witnesses are judged in exact arithmetic (``bench/robust.py``): a real
counterexample (found by smug's own verifier, replayed exactly) is one; the input itself is not."""

from __future__ import annotations

import numpy as np
import pytest

from smug.bench.robust import EPSILON, NETS, _model, replay_witness, mnist_test_images

pytestmark = pytest.mark.skipif(not NETS["mnist-10x2"].exists(), reason="VeriX's network (shared/peers) is absent")


def test_a_counterexample_counts_and_the_input_itself_does_not():
    from smug.pipeline.robust import RobustConfig, robust_query
    from smug.solver.robust import COUNTEREXAMPLE, Verifier, exact_margins

    model = _model("mnist-10x2")
    query = robust_query(model, mnist_test_images()[0].reshape(model.input_shape).astype(np.float64), RobustConfig(epsilon=EPSILON))
    nothing = np.zeros(query.n_vars, bool)
    verdict = Verifier(query).verify(nothing)  # every pixel free: digit 0 is not robust at 0.05
    assert verdict.status == COUNTEREXAMPLE
    witness = verdict.counterexample.input
    assert min(exact_margins(query.problem, witness)) <= 0  # the plain reference: a counterexample exactly

    real = replay_witness("mnist-10x2", 0, [], witness.tolist())
    assert real["counterexample"] and real["outside"] == 0.0 and real["margin"] <= 0

    itself = replay_witness("mnist-10x2", 0, [], query.problem.x.tolist())
    assert not itself["counterexample"] and itself["margin"] > 0

    beyond = replay_witness("mnist-10x2", 0, [], (witness + np.where(witness > 0.5, 0.01, -0.01)).tolist())
    assert beyond["outside"] > 0  # moved back into the box before it is judged
