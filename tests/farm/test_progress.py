"""The farm's progress display: a bar on a terminal, only its one-off facts in a log."""

from __future__ import annotations

import io

from smug.farm.engine import BatchState
from smug.farm.progress import ProgressBar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _show(stream) -> str:
    bar = ProgressBar(stream)
    for done in range(3):
        bar(BatchState(total=2, done=done, failed=0, running=2 - done, skipped=1))
    bar.close()
    return stream.getvalue()


def test_the_bar_is_drawn_on_a_terminal_only():
    log, terminal = _show(io.StringIO()), _show(_Terminal())
    assert log == "smug farm: 1 job(s) already finished in the store, skipped\n"
    assert terminal.startswith(log) and "\r" in terminal and "done 2, failed 0" in terminal
