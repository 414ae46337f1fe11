"""Progress events (smug/events.py) and the Deadline (smug/deadline.py): one vocabulary, readable lines."""

from __future__ import annotations

import math
import pickle
import time

import numpy as np

from smug.deadline import Deadline
from smug.events import Improved, Stage, WorkDone


def test_every_event_prints_as_one_short_line_without_arrays():
    """``run(request, progress=print)`` (README): a 784-variable mask must not be printed."""
    events = [Stage("solve"), Stage("solve", True, 1.25), WorkDone("attribute", "rise", 3, 40),
              Improved(12, 3, 0.5, np.ones(784, bool), "z3")]
    lines = [str(ev) for ev in events]
    assert lines == ["solve started at 0.00 s", "solve finished at 1.25 s", "attribute: rise 3/40",
                     "mask 12, proven >= 3 (0.5 s, z3)"]
    assert "mask=" not in repr(events[-1]) and len(repr(events[-1])) < 120


def test_events_travel_between_processes_and_compare_without_their_masks():
    ev = Improved(5, 2, 0.1, np.arange(5) < 3)
    back = pickle.loads(pickle.dumps(ev))
    assert back == ev and np.array_equal(back.mask, ev.mask)
    assert Improved(5, 2, 0.1, None) == ev  # the mask is the payload, not the identity of an event


def test_a_deadline_less_a_margin_and_without_a_limit():
    d = Deadline.after(10.0)
    assert d.bounded and 9.0 < d.remaining() <= 10.0 and not d.expired()
    assert math.isclose(d.minus(1.5).at, d.at - 1.5) and d.minus(11.0).expired()
    none = Deadline()
    assert not none.bounded and none.minus(5.0).remaining() == math.inf and not none.expired()
    assert Deadline.after(-1.0).expired() and Deadline.after(5.0).earlier(d).at < d.at
    assert abs(Deadline.after(0.0).at - time.time()) < 1.0
