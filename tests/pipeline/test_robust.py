"""Robust explanations (issue 30) through the pipeline, on the zoo's MNIST MLP."""

import numpy as np
import pytest

from smug.models.zoo import load_model
from smug.pipeline import explain
from smug.pipeline.request import ExplainRequest, RequestError
from smug.pipeline.robust import RobustConfig, robust_query
from smug.solver.robust import COUNTEREXAMPLE, ROBUST, Verifier


def test_subset_answer_is_robust_and_each_pixel_needed(mnist_test_split):
    x = mnist_test_split[0][16]  # at epsilon 0.05 a dozen pixels must stay (at 0.01 none: a trivial answer)
    e = explain(x, "mnist-mlp", method="robust", epsilon=0.05, timeout=60)
    info = e.encoding["robust"]
    assert info["status"] == "subset-minimal" and info["counterexamples"] == e.objective > 0
    fixed = e.image.mask.ravel().astype(bool)
    assert fixed.sum() == e.objective
    model = load_model("mnist-mlp")[0]
    verifier = Verifier(robust_query(model, x, RobustConfig(epsilon=0.05), e.target))  # a fresh verifier
    assert verifier.verify(fixed).status == ROBUST
    for p in np.flatnonzero(fixed)[:5]:  # dropping a pixel of E breaks robustness
        without = fixed.copy()
        without[p] = False
        assert verifier.verify(without).status == COUNTEREXAMPLE
    # the picture, with the counterexample of one pixel of E on request; a pixel outside E has none
    from smug.pipeline.robust_picture import robust_picture

    p = int(np.flatnonzero(fixed)[0])
    png = robust_picture(model, x, RobustConfig(epsilon=0.05), fixed, pixel=(p // 28, p % 28), target=e.target)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > len(robust_picture(model, x, RobustConfig(epsilon=0.05),
                                                                              fixed, target=e.target))
    outside = int(np.flatnonzero(~fixed)[0])
    with pytest.raises(ValueError, match="not in E"):
        robust_picture(model, x, RobustConfig(epsilon=0.05), fixed, pixel=(outside // 28, outside % 28))
    # the answer's own figure: the kept pixels (no saliency panel) and what is proven, in words
    from smug.rendering.figure import answer_facts

    facts = answer_facts(e)
    assert facts.panels == ("input", "kept")
    assert "epsilon = 0.05" in facts.lines[0] and "subset-minimal" in facts.lines[0]
    assert f"proven lower bound {e.lower_bound}" in facts.lines[0]


@pytest.mark.parametrize("params, words", [({"epsilon": -1.0}, "epsilon"), ({"mode": "fast"}, "mode"),
                                           ({"window": 0}, "window"), ({"delta": 0.1}, "do not apply")])
def test_bad_parameters_are_refused_before_any_work(params, words):
    with pytest.raises(RequestError, match=words):
        ExplainRequest.build(model="mnist-mlp", method="robust", **params)


def test_text_models_are_refused():
    with pytest.raises(RequestError, match="image models"):
        ExplainRequest.build(model="text-cnn", method="robust")
