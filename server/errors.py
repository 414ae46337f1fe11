"""Service errors: every failure maps to one gRPC status code and a precise message.

:func:`public` is the last step before a message leaves the server: no absolute path
(the store, a worker's temp folder), no process or thread id, no exception class, and a
bounded length, whatever produced it.
"""

from __future__ import annotations

import re

MAX_MESSAGE = 600  # characters of an error message sent to a client
SHOWN = 48  # characters of a client-chosen string (a model name) echoed in a message

_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s'\"/:,;()\[\]]+/?)+")  # an absolute POSIX path
_UPLOAD = re.compile(r"\.?[0-9a-f]{64}\.\d+\.\d+\.upload")
_EXC = re.compile(r"\b(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exceeded|Interrupt|Warning)\b:?\s*")


class ServiceError(Exception):
    """A request that fails with gRPC status ``code`` (a ``grpc.StatusCode`` name)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServiceError:
    return ServiceError("INVALID_ARGUMENT", message)


def shown(value: str, limit: int = SHOWN) -> str:
    """A client-chosen string as echoed in messages and logs: quoted, at most ``limit`` characters."""
    value = str(value)
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def public(message: str) -> str:
    """``message`` as a client may see it: paths, temp names and exception class names removed, length capped."""
    text = _UPLOAD.sub("the upload", str(message))
    text = _PATH.sub("<server path>", text)
    text = _EXC.sub("", text)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "... (message truncated)"
    return text
