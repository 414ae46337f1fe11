"""Keep-class mode: the ladder, the refinement loop against a plain reference, and real models
where plain SMUG loses the decision (each answer re-checked by a forward pass)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from smug.pipeline import ExplainRequest, encode, explain
from smug.deadline import Deadline
from smug.pipeline.inputs import load_image, load_text_model
from smug.pipeline.keep_class import BISECTIONS, GAMMAS, Verdict, ladder, refine
from smug.solver.certificate import certify

SNIPPETS = Path(__file__).resolve().parents[3] / "shared" / "data" / "vader-snippets" / \
    "movieReviewSnippets_GroundTruth.txt"


def test_ladder_raises_gamma_then_k_without_repeats():
    assert ladder(3000, 0.0, 17) == [(17, 0.0), *((17, g) for g in GAMMAS)]
    steps = ladder(10, 0.3, 100)
    assert steps[0] == (10, 0.3) and len(steps) == len(set(steps))
    assert [g for k, g in steps if k == 10] == [0.3, *GAMMAS]
    assert [k for k, _ in steps[len(GAMMAS) + 1:]] == [30, 90, 100]  # then k x 3 at the strongest gamma
    assert all(g == GAMMAS[-1] for _, g in steps[len(GAMMAS) + 1:])


@dataclass(frozen=True)
class _Toy:
    """A toy encoding: the mask size grows with gamma; the decision is kept from gamma >= 0.7 on."""

    k: int
    gamma: float

    @property
    def problem(self):
        return self


@dataclass(frozen=True)
class _Sol:
    mask: np.ndarray
    status: str = "optimal"

    @property
    def objective(self) -> int:
        return int(self.mask.sum())

    @property
    def lower_bound(self) -> int:
        return self.objective


def test_refine_matches_a_plain_search():
    size = lambda g: 1 + int(20 * g)  # noqa: E731
    solve = lambda toy: _Sol(np.arange(30) < size(toy.gamma))  # noqa: E731
    check = lambda toy, mask: Verdict(toy.gamma >= 0.7, toy.gamma, toy.gamma - 0.7)  # noqa: E731
    chosen, steps = refine(5, 0.0, 9, lambda k, g: _Toy(k, g), solve, check, Deadline())
    # the ladder to the first keeping gamma (0.9), then bisection between 0.6 and 0.9
    assert [(s.top_k, s.gamma) for s in steps[:3]] == [(5, 0.0), (5, 0.6), (5, 0.9)]
    assert len(steps) == 3 + BISECTIONS and [s.gamma for s in steps[3:]] == [0.75, 0.675]
    kept = [s for s in steps if s.keeps_class]
    assert chosen.step == min(kept, key=lambda s: s.objective) and chosen.step.gamma == 0.75
    never = lambda toy, mask: Verdict(False, toy.gamma / 2, -1.0)  # noqa: E731
    chosen, steps = refine(5, 0.0, 9, lambda k, g: _Toy(k, g), solve, never, Deadline())
    assert not chosen.step.keeps_class and len(steps) == len(ladder(5, 0.0, 9))
    assert chosen.step.confidence == max(s.confidence for s in steps)  # the closest step is answered


def _forward_keeps(e, model, x, baseline: float = 0.0) -> bool:
    masked = np.where(e.pixel_mask[None], x, baseline).astype(np.float32)
    return int(model.logits(masked[None])[0].argmax()) == e.target


def test_mnist_first_layer_mask_keeps_the_digit_only_in_keep_class_mode():
    plain = explain(None, "mnist-mlp", timeout=30)
    kept = explain(None, "mnist-mlp", timeout=30, keep_class=True)
    req = ExplainRequest.build(None, "mnist-mlp")
    digit = encode(req)
    subject = load_image(req)
    assert plain.keeps_class is False and not _forward_keeps(plain, subject.model, subject.x)
    assert kept.keeps_class is True and _forward_keeps(kept, subject.model, subject.x)
    assert kept.status == "optimal" and kept.objective > plain.objective and digit.target == kept.target
    report = kept.encoding["keep_class"]
    c = report["constraints"]
    # the mask is certified for the reported constraint set, and minimal for it
    chosen = encode(ExplainRequest.build(None, "mnist-mlp", top_k=c["top_k"], gamma=c["gamma"]))
    assert certify(chosen.problem, kept.mask.ravel()).valid
    again = explain(None, "mnist-mlp", top_k=c["top_k"], gamma=c["gamma"], timeout=30)
    assert again.objective == kept.objective
    # every reported step matches what plain SMUG gives for that step's constraints
    for step in report["steps"][:3]:
        e = explain(None, "mnist-mlp", top_k=step["top_k"], gamma=step["gamma"], timeout=30)
        assert (e.objective, e.keeps_class) == (step["objective"], step["keeps_class"])
    assert json.loads(json.dumps(kept.to_json()))["keeps_class"] is True


def _text_check(text: str, kept, min_confidence: float | None = None) -> None:
    """Re-check a keep-class text answer: certified for its reported constraints, and the model's
    rating of the masked text keeps the side of 0.5 (and the explained score, if asked)."""
    from smug.encoders.text import masked_ids
    from smug.models.text_cnn import ratings

    c = kept.encoding["keep_class"]["constraints"]
    enc = encode(ExplainRequest.build(None, "text-cnn", text=text, top_k=c["top_k"], gamma=c["gamma"]))
    mask = np.array(kept.word_mask)
    assert certify(enc.problem, mask).valid
    model, _ = load_text_model("text-cnn")
    rating = float(ratings(model, enc.details.ids[None])[0])
    masked = float(ratings(model, masked_ids(enc.details.ids, enc.details.grid, mask)[None])[0])
    assert (masked >= 0.5) == (rating >= 0.5)
    if min_confidence is not None:
        assert (masked if rating >= 0.5 else 1 - masked) >= min_confidence


def test_a_text_mask_below_the_asked_confidence_is_strengthened_until_it_holds():
    text = "a wonderful, moving masterpiece"
    plain = explain(None, "text-cnn", text=text, rows=("smug",), timeout=30, keep_class=True, min_confidence=0.5)
    assert plain.keeps_class and plain.masked_confidence < 0.95  # the plain mask keeps the side, not 0.95
    kept = explain(None, "text-cnn", text=text, rows=("smug",), timeout=30, keep_class=True, min_confidence=0.95)
    assert kept.keeps_class is True and kept.masked_confidence >= 0.95 and kept.objective > plain.objective
    assert kept.encoding["keep_class"]["steps"][0]["keeps_class"] is False  # the first step was not enough
    _text_check(text, kept, 0.95)


def test_snippets_that_lose_their_rating_side_keep_it_in_keep_class_mode():
    """Real snippets where plain SMUG flips the rating's side (which ones depends on the tie
    between optimal masks, so every loss found among the first 40 is repaired and re-checked)."""
    if not SNIPPETS.is_file():
        pytest.skip(f"real data not found: {SNIPPETS}")
    texts = [line.split("\t")[2] for line in SNIPPETS.read_text().splitlines()[:40]]
    plain = [explain(None, "text-cnn", text=t, rows=("smug",), timeout=30) for t in texts]
    for i in [i for i, e in enumerate(plain) if e.keeps_class is False]:
        kept = explain(None, "text-cnn", text=texts[i], rows=("smug",), timeout=30, keep_class=True)
        assert kept.keeps_class is True and kept.status in ("optimal", "feasible")
        _text_check(texts[i], kept)


def test_whole_network_masks_keep_the_class_by_construction():
    e = explain(None, "mnist-mlp", method="whole-network", timeout=30, keep_class=True)
    assert e.keeps_class is True and "by construction" in e.encoding["keeps_class"]
    assert e.request["keep_class"] is None  # nothing to refine


def test_keep_class_refuses_baselines_and_bad_confidence():
    with pytest.raises(ValueError, match="keep_class applies"):
        ExplainRequest.build(None, "mnist-mlp", method="gradient", keep_class=True)
    with pytest.raises(ValueError, match="min_confidence"):
        ExplainRequest.build(None, "mnist-mlp", keep_class=True, min_confidence=1.5)
