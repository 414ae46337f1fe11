"""The server's log is JSON lines whoever writes to it (smug.server.logs)."""

from __future__ import annotations

import io
import json
import logging
import warnings

from smug.server.logs import configure


def test_every_record_and_warning_becomes_one_json_line():
    import dask.config

    dask_logging = dask.config.config.get("logging")
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("smug").level)
    dask_saved = [(n, list(logging.getLogger(n).handlers), logging.getLogger(n).level, logging.getLogger(n).propagate)
                  for n in ("distributed", "bokeh", "tornado")]
    stream = io.StringIO()
    try:
        configure(stream)
        logging.getLogger("smug.server").info('{"event": "serving", "port": 1}')
        logging.getLogger("smug.server").info("a plain sentence")
        import distributed  # noqa: F401 (its import gives the "distributed" logger a plain stderr handler)

        logging.getLogger("distributed.nanny").warning("Worker process still alive after %.1f seconds", 4.0)
        logging.getLogger("distributed.core").info("chatter below WARNING stays out")
        warnings.warn("a library's warning", UserWarning, stacklevel=1)
    finally:
        logging.captureWarnings(False)
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("smug").setLevel(saved[2])
        dask.config.config["logging"] = dask_logging
        for name, handlers, level, propagate in dask_saved:
            logger = logging.getLogger(name)
            logger.handlers[:], logger.propagate = handlers, propagate
            logger.setLevel(level)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines[0] == {"event": "serving", "port": 1}
    assert lines[1] == {"event": "log", "logger": "smug.server", "level": "info", "message": "a plain sentence"}
    assert lines[2]["logger"] == "distributed.nanny" and lines[2]["message"].endswith("after 4.0 seconds")
    assert lines[3]["logger"] == "py.warnings" and "a library's warning" in lines[3]["message"]
    assert len(lines) == 4
