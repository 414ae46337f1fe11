"""one_ahead: the prepared items, in order, each prepared once, the next one while the caller works."""

from __future__ import annotations

import threading

import numpy as np

from smug.baselines.ahead import one_ahead


def test_items_come_in_order_with_the_draws_of_a_plain_loop():
    plain_rng, rng = np.random.default_rng(3), np.random.default_rng(3)
    plain = [plain_rng.random(n) for n in (4, 1, 3, 0, 2)]
    got = list(one_ahead(lambda n: rng.random(n), (4, 1, 3, 0, 2)))
    assert len(got) == len(plain) and all(np.array_equal(a, b) for a, b in zip(got, plain))
    assert list(one_ahead(lambda n: n, [])) == []


def test_the_next_item_is_prepared_while_the_caller_works():
    prepared = {i: threading.Event() for i in range(3)}

    def prepare(i: int) -> int:
        prepared[i].set()
        return i

    for i in one_ahead(prepare, range(3)):
        if i < 2:  # the caller still holds item i: item i + 1 gets prepared meanwhile
            assert prepared[i + 1].wait(timeout=30)


def test_stopping_early_prepares_at_most_one_more():
    seen = []
    lock = threading.Lock()

    def prepare(i: int) -> int:
        with lock:
            seen.append(i)
        return i

    for i in one_ahead(prepare, range(100)):
        if i == 4:
            break
    assert seen == list(range(6))
