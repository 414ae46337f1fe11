"""Win% with ties, its interval, and the mean interval."""

from __future__ import annotations

import math

import pytest

from smug.metrics.winrate import mean_interval, win_rates, winners


def test_winners_ties_count_for_all_and_nan_never_wins():
    assert winners({"a": -1.0, "b": -1.0, "c": 0.5}) == {"a", "b"}
    assert winners({"a": float("nan"), "b": 2.0}) == {"b"}
    assert winners({"a": float("nan")}) == set()
    assert winners({"a": -1.0, "b": -0.99}, tol=0.05) == {"a", "b"}


def test_win_rates_ties_and_interval():
    table = {
        "img1": {"smug": -1.0, "ig": -1.0, "box": 0.0},  # tie: both win
        "img2": {"smug": -2.0, "ig": -1.0, "box": 0.0},
        "img3": {"smug": 0.0, "ig": -1.0, "box": 0.0},
        "img4": {"smug": -3.0, "ig": -3.0, "box": -3.0},  # three-way tie
        "img5": {"smug": -3.0},  # incomplete: ignored
    }
    w = win_rates(table, ["smug", "ig", "box"])
    assert (w["smug"].wins, w["ig"].wins, w["box"].wins) == (3, 3, 1)
    assert all(r.n == 4 for r in w.values())
    assert w["smug"].percent == 75.0
    assert sum(r.percent for r in w.values()) > 100.0  # ties: need not sum to 100
    assert w["smug"].half_width == pytest.approx(100 * 1.96 * math.sqrt(0.75 * 0.25 / 4))
    assert w["box"].half_width == pytest.approx(100 * 1.96 * math.sqrt(0.25 * 0.75 / 4))


def test_win_rates_empty_and_mean_interval():
    w = win_rates({}, ["a"])
    assert w["a"].n == 0 and math.isnan(w["a"].percent)
    mu, hw = mean_interval([1.0, 2.0, 3.0])
    assert mu == 2.0 and hw == pytest.approx(1.96 * 1.0 / math.sqrt(3))
    assert mean_interval([5.0]) == (5.0, 0.0)
