"""The server's log: one JSON object a line, whichever logger or library wrote the record.

smug's own records (``smug.server``) already are JSON objects and pass as they are; anything else
(a library's warning, Dask's or gRPC's messages, a Python warning) becomes
``{"event": "log", "logger": ..., "level": ..., "message": ...}``, so that a log reader parses
every line.  smug's records are kept from INFO up, every other logger's from WARNING up.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import IO


class JsonLines(logging.Formatter):
    """A record as one JSON line: a JSON object message as it is, any other message wrapped."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if message.startswith("{") and not record.exc_info:
            try:
                if isinstance(json.loads(message), dict):
                    return message
            except ValueError:
                pass
        entry = {"event": "log", "logger": record.name, "level": record.levelname.lower(), "message": message}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


OWN_HANDLERS = ("distributed", "bokeh", "tornado")  # loggers Dask gives their own stderr handler on import


def configure(stream: IO[str] | None = None) -> logging.Handler:
    """Send every log record and Python warning of this process to ``stream`` (default: stderr) as JSON
    lines: smug's records from INFO, other loggers' from WARNING (Dask's too: its own plain-text
    handlers are left out now and when it is imported later, through its ``logging`` setting).
    Returns the handler."""
    import dask.config

    routed = {name: {"level": "WARNING", "propagate": True} for name in OWN_HANDLERS}
    dask.config.set({"logging": {"version": 1, "incremental": True, "loggers": routed}})
    for name in OWN_HANDLERS:  # already imported: the same by hand
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.WARNING)
        logger.propagate = True
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("smug").setLevel(logging.INFO)
    logging.captureWarnings(True)  # warnings.warn(...) reaches the log as records of "py.warnings"
    return handler
