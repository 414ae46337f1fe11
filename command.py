"""The ``smug`` executable: ``smug serve ...`` starts the service, every other command is the CLI.

The two front ends never import each other; this router is the only place that knows both.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def end_process(code: object) -> NoReturn:
    """Leave the process as the interpreter would, less its teardown of every module (torch's alone
    takes about 1.3 s; docs/benchmarks.md, start-up): non-daemon threads are joined, the ``atexit``
    callbacks run (multiprocessing stops and reaps its children, temporary folders are removed,
    Dask closes its clients), the streams are flushed, then ``os._exit`` with ``SystemExit``'s
    meaning of ``code`` (None: 0, an int: itself, anything else: printed, 1)."""
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # the interpreter's own exit work; CPython has no public name for it
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code or 0)


def main(argv: list[str] | None = None) -> None:
    """Run one command.  As the executable (``argv`` None) a CLI command ends the process by
    :func:`end_process`; called with ``argv`` it raises ``SystemExit`` as usual.

    Unless the user set it, the executable runs numpy's OpenBLAS on one thread
    (``OPENBLAS_NUM_THREADS=1``, read when numpy loads): smug's dense algebra is small, and the
    idle BLAS threads' spinning cost a ``smug explain --model mnist-mlp`` about 0.15 CPU s of
    1.6 with no wall-clock gain (docs/benchmarks.md, start-up); torch and onnxruntime keep their
    own threads."""
    if argv is None:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["serve"]:
        from smug.server.main import main as serve

        serve(args[1:], prog="smug serve")
        return
    from smug.clients.cli import main as cli

    try:
        cli(args)
    except SystemExit as done:
        if argv is not None:
            raise
        end_process(done.code)


if __name__ == "__main__":
    main()
