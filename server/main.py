"""``smug serve`` / ``python -m smug.server``: start the gRPC service.

Health checking (``grpc.health.v1``) and server reflection are on, so
``grpc_health_probe`` and ``grpcurl``-style tools work without the .proto file.
SIGTERM / SIGINT drain in-flight requests (up to ``--shutdown-grace`` seconds)
before the workers stop.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from smug.server.config import ServerConfig


@dataclass
class SmugServer:
    """A running server: ``port`` is the bound port (useful with port 0)."""

    server: object
    service: object
    health: object
    pool: object
    port: int
    config: ServerConfig

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: NOT_SERVING, refuse new RPCs, let in-flight ones finish, stop workers."""
        self.health.enter_graceful_shutdown()
        self.server.stop(self.config.shutdown_grace if grace is None else grace).wait()
        self.pool.close()

    def wait(self) -> None:
        self.server.wait_for_termination()


def start(config: ServerConfig) -> SmugServer:
    """Bind, start workers and serve (returns at once)."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection

    from smug.proto import SERVICE, load
    from smug.server.pool import WorkerPool
    from smug.server.service import AuthInterceptor, SmugService

    pb, pb_grpc = load()
    pool = WorkerPool(config.workers, config.worker_threads, config.memory_mb, config.grace, config.preload,
                      assemble_s=config.deadline_margin)
    service = SmugService(config, pool)
    # handler threads: every admitted request (running or queued) plus room for cheap RPCs
    threads = config.workers + config.max_queue + 8
    options = [("grpc.max_send_message_length", config.max_message_bytes),
               ("grpc.max_receive_message_length", config.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    interceptors = [AuthInterceptor(config.token)] if config.token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="smug-rpc"),
                         options=options, interceptors=interceptors)
    pb_grpc.add_SmugServicer_to_server(service, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (pb.DESCRIPTOR.services_by_name["Smug"].full_name, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    address = f"{config.host}:{config.port}"
    if config.tls_cert is not None:
        creds = grpc.ssl_server_credentials([(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())])
        port = server.add_secure_port(address, creds)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        pool.close()
        raise OSError(f"cannot bind {address}")
    server.start()
    if config.inspect_zoo:
        threading.Thread(target=service.registry.inspect_zoo, daemon=True, name="smug-zoo").start()
    for name in ("", SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return SmugServer(server, service, health_servicer, pool, port, config)


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = ServerConfig()
    p.add_argument("--host", default=d.host, help=f"address to bind (default {d.host}; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port}; 0 = any free port)")
    p.add_argument("--workers", type=int, default=d.workers, help="solver worker processes (default: CPU count)")
    p.add_argument("--max-queue", type=int, default=d.max_queue,
                   help=f"requests that may wait for a worker; beyond: RESOURCE_EXHAUSTED (default {d.max_queue})")
    p.add_argument("--max-message-mb", type=float, default=d.max_message_mb, help="gRPC message size limit")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb, help="ONNX upload cap")
    p.add_argument("--max-timeout", type=float, default=d.max_timeout, help="largest solver timeout allowed")
    p.add_argument("--deadline-margin", type=float, default=d.deadline_margin,
                   help="seconds kept between the solver timeout and the gRPC deadline")
    p.add_argument("--grace", type=float, default=d.grace,
                   help="a worker this long past its deadline is killed and replaced")
    p.add_argument("--memory-mb", type=int, default=d.memory_mb, help="per-worker resident memory cap")
    p.add_argument("--worker-threads", type=int, default=d.worker_threads,
                   help="torch / onnxruntime / BLAS threads per worker (default 1: one worker per core)")
    p.add_argument("--token", default=None,
                   help="require 'authorization: Bearer TOKEN' metadata (default: $SMUG_TOKEN if set)")
    p.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate chain (TLS on with --tls-key)")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key")
    p.add_argument("--store", type=Path, default=None, help="folder for uploaded models ($SMUG_CACHE/server-models)")
    p.add_argument("--preload", default="", help="comma-separated zoo models each worker loads at start")
    p.add_argument("--shutdown-grace", type=float, default=d.shutdown_grace,
                   help="seconds in-flight requests get on SIGTERM/SIGINT")


def config_from_args(a: argparse.Namespace) -> ServerConfig:
    return ServerConfig(host=a.host, port=a.port, workers=a.workers, max_queue=a.max_queue,
                        max_message_mb=a.max_message_mb, max_upload_mb=a.max_upload_mb, max_timeout=a.max_timeout,
                        deadline_margin=a.deadline_margin, grace=a.grace, memory_mb=a.memory_mb,
                        worker_threads=a.worker_threads,
                        token=a.token or os.environ.get("SMUG_TOKEN") or None, tls_cert=a.tls_cert,
                        tls_key=a.tls_key, store=a.store, shutdown_grace=a.shutdown_grace,
                        preload=tuple(n for n in a.preload.split(",") if n))


def serve_from_args(a: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT, then drain; the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    config = config_from_args(a)
    srv = start(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("smug.server").info(
        '{"event": "serving", "address": "%s:%d", "workers": %d, "tls": %s, "auth": %s}', config.host, srv.port,
        config.workers, "true" if config.tls_cert else "false", "true" if config.token else "false")
    stop.wait()
    logging.getLogger("smug.server").info('{"event": "draining", "grace_s": %s}', config.shutdown_grace)
    srv.stop()
    logging.getLogger("smug.server").info('{"event": "stopped"}')
    return 0


def main(argv: list[str] | None = None, prog: str = "python -m smug.server") -> None:
    p = argparse.ArgumentParser(prog=prog, description="smug gRPC solver service")
    add_arguments(p)
    a = p.parse_args(argv)
    try:
        code = serve_from_args(a)
    except (ValueError, OSError) as exc:
        print(f"smug: error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
