"""Prepare the next batch while the model runs on this one.

The perturbation baselines alternate numpy work (drawing masks, building masked inputs)
with model runs; onnxruntime and numpy's large-array kernels release the GIL, so one
helper thread preparing batch ``i + 1`` overlaps the model's run on batch ``i``.  The
items come out in order and are computed in order (a random generator used by the
producer gives the same draws as a plain loop).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
U = TypeVar("U")


def one_ahead(prepare: Callable[[T], U], items: Iterable[T]) -> Iterator[U]:
    """``prepare(item)`` for each item, in order, the next one computed while the caller works on this one.
    Stopping early leaves at most one prepared item unused."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        it = iter(items)
        nxt = next(it, _END)
        pending = None if nxt is _END else pool.submit(prepare, nxt)
        while pending is not None:
            current = pending.result()
            nxt = next(it, _END)
            pending = None if nxt is _END else pool.submit(prepare, nxt)
            yield current


_END = object()
