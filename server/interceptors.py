"""What every RPC passes before its handler runs: the bearer-token check and the wire guard.

* :class:`AuthInterceptor` refuses a call without the right token *before its request
  message is read*: the refusal is a request-streaming handler that aborts without
  consuming anything, so an unauthenticated client cannot make the server parse (or
  buffer beyond gRPC's flow-control window) a large message.  Every refusal is logged
  (rpc, peer, reason; never the token given).
* :class:`WireGuard` makes a request (or an item of a request stream) that does not parse
  as its protobuf message an ``INVALID_ARGUMENT`` naming the RPC (and the item), with a
  log line (gRPC's own answer is ``INTERNAL`` "Exception deserializing request!", and a
  stream's handler would see the items before the bad one as the whole stream).
"""

from __future__ import annotations

import hmac
import json
import logging

import grpc

from smug.server.errors import ServiceError

log = logging.getLogger("smug.server")
HEALTH_PREFIX = "/grpc.health.v1.Health/"


class AuthInterceptor(grpc.ServerInterceptor):
    """Bearer-token check on every RPC except health checks (metadata ``authorization``)."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or details.method.startswith(HEALTH_PREFIX):
            return handler
        given = dict(details.invocation_metadata).get("authorization")
        if given is None:
            return _deny(details.method, "missing",
                         "missing bearer token: send metadata 'authorization: Bearer <token>'")
        if not hmac.compare_digest(str(given).encode("utf-8", "replace"), self._expected):
            return _deny(details.method, "wrong", "wrong bearer token")
        return handler


def _deny(method: str, reason: str, message: str):
    """A handler that logs the failed login and aborts before reading any request message."""

    def abort(request_iterator, context):
        log.warning(json.dumps({"event": "auth_failed", "rpc": method.rsplit("/", 1)[-1], "reason": reason,
                                "peer": context.peer(), "code": "UNAUTHENTICATED"}))
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.stream_stream_rpc_method_handler(abort)  # request-streaming: nothing is read before the abort


class _Malformed:
    """Stands for a request message that did not parse."""


MALFORMED = _Malformed()


class WireGuard(grpc.ServerInterceptor):
    """Malformed protobuf -> ``INVALID_ARGUMENT`` (and a log line) for every RPC.

    A unary request that does not parse is refused before its handler runs.  A request
    stream is handed to its handler as an iterator that raises a :class:`ServiceError`
    at the first item that does not parse (``INVALID_ARGUMENT`` naming the item) or when
    the client goes mid-stream (``CANCELLED``), so a handler that reads its whole stream
    before acting (``SubmitBatch``) acts on complete streams only: gRPC's own behaviour is
    to end the stream early, as if the client had sent only the items before the bad one.
    """

    def intercept_service(self, continuation, details):
        handler = continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        rpc = details.method.rsplit("/", 1)[-1]
        parse = handler.request_deserializer

        def tolerant(raw: bytes):
            try:
                return parse(raw)
            except Exception:  # protobuf's DecodeError, invalid UTF-8 in a string field, nesting too deep
                return MALFORMED

        def refused(context, what: str) -> str:
            log.info(json.dumps({"event": "malformed_request", "rpc": rpc, "peer": context.peer(),
                                 "code": "INVALID_ARGUMENT"}))
            return f"{what} is not a valid protobuf message of its type"

        if handler.request_streaming:
            behave = handler.stream_unary or handler.stream_stream

            def items(requests, context):
                gone = ServiceError("CANCELLED", f"the client ended the {rpc} stream before its last item")
                try:
                    for n, item in enumerate(requests):
                        if item is MALFORMED:
                            raise ServiceError("INVALID_ARGUMENT", refused(context, f"item {n} of the {rpc} stream"))
                        yield item
                except grpc.RpcError:  # the client cancelled, or its deadline passed, mid-stream
                    raise gone from None
                if not context.is_active() or context.time_remaining() <= 0:  # gRPC ends the iteration quietly
                    raise gone  # when the client went first (its cancel may be noticed a moment later; a deadline not)

            def streamed(requests, context):
                return behave(items(requests, context), context)

            make = (grpc.stream_stream_rpc_method_handler if handler.response_streaming
                    else grpc.stream_unary_rpc_method_handler)
            return make(streamed, request_deserializer=tolerant, response_serializer=handler.response_serializer)

        behave = handler.unary_unary or handler.unary_stream

        def guarded(request, context):
            if request is MALFORMED:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, refused(context, f"the {rpc} request"))
            return behave(request, context)

        make = (grpc.unary_stream_rpc_method_handler if handler.response_streaming
                else grpc.unary_unary_rpc_method_handler)
        return make(guarded, request_deserializer=tolerant, response_serializer=handler.response_serializer)
