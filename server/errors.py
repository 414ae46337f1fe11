"""Service errors: every failure maps to one gRPC status code and a precise message."""

from __future__ import annotations


class ServiceError(Exception):
    """A request that fails with gRPC status ``code`` (a ``grpc.StatusCode`` name)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message: str) -> ServiceError:
    return ServiceError("INVALID_ARGUMENT", message)
