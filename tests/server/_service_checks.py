"""Checks shared by the service tests: waiting for a condition, and a call the service refuses."""

from __future__ import annotations

import time

import pytest

from smug.clients.client import RemoteError


def wait_until(cond, seconds: float = 10.0) -> bool:
    """Whether ``cond()`` holds within ``seconds`` (polled every 50 ms)."""
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def refused(call, code, *words) -> RemoteError:
    """``call()`` fails with gRPC status ``code`` and a message containing each of ``words``."""
    with pytest.raises(RemoteError) as err:
        call()
    assert err.value.code == code, err.value
    for w in words:
        assert w in err.value.message, err.value.message
    return err.value
