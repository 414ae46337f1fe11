"""The farm's progress bar on stderr (tqdm): done, failed, running, jobs per minute, ETA."""

from __future__ import annotations

import sys
import time

from smug.farm.engine import BatchState


class ProgressBar:
    """A ``progress`` callback for :func:`smug.farm.run`; close it at the end.  The bar is drawn on a
    terminal only (redrawn lines are noise in a log); the skipped jobs and the dashboard are said anyway."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.bar, self.t0, self.started = stream, None, time.monotonic(), False
        self.tty = bool(getattr(stream, "isatty", lambda: False)())

    def __call__(self, s: BatchState) -> None:
        from tqdm import tqdm

        if not self.started:
            self.started = True
            if s.skipped:
                print(f"smug farm: {s.skipped} job(s) already finished in the store, skipped", file=self.stream)
            if s.dashboard:
                print(f"smug farm: Dask dashboard at {s.dashboard}", file=self.stream)
            if self.tty:
                self.bar = tqdm(total=s.total, unit="job", file=self.stream, dynamic_ncols=True, smoothing=0.1)
        if self.bar is None:
            return
        finished = s.done + s.failed
        self.bar.update(finished - self.bar.n)
        minutes = max(1e-9, (time.monotonic() - self.t0) / 60)
        self.bar.set_postfix_str(f"done {s.done}, failed {s.failed}, running {s.running}, "
                                 f"{finished / minutes:.1f} jobs/min", refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
