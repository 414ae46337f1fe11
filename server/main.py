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
import time
from dataclasses import dataclass
from pathlib import Path

from smug.server.config import ServerConfig, default_memory_mb


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
        """Drain, then stop: health says NOT_SERVING (and keeps answering), new work is refused with
        UNAVAILABLE, in-flight requests may finish; at :func:`hurry_after` the busy workers are told to
        stop their solves and answer with the best verified mask so far; then the server stops (calls
        still open then are logged as ended by the server, not by their clients)."""
        grace = self.config.shutdown_grace if grace is None else grace
        t0 = time.time()
        self.service.draining = True
        self.health.enter_graceful_shutdown()
        hurried = False
        while self.service.running and time.time() < t0 + grace:
            if not hurried and time.time() >= t0 + hurry_after(grace):
                self.pool.hurry()
                hurried = True
            time.sleep(0.05)
        self.service.stopping.set()
        self.server.stop(max(0.0, t0 + grace - time.time())).wait()
        if self.service.batches is not None:
            self.service.batches.close()
        self.pool.close()

    def wait(self) -> None:
        self.server.wait_for_termination()


HURRY_LEAD_S = 5.0  # what a hurried worker may need to re-check its best mask and answer (see hurry_after)


def hurry_after(grace: float) -> float:
    """Seconds into a drain of ``grace`` seconds at which busy workers are hurried: half the grace
    (in-flight requests may still finish on their own), but never later than :data:`HURRY_LEAD_S`
    before its end, so at once for a grace under 5 s.  From the hurry, a worker stops its solves and
    answers with the best verified mask they reported, whose exact check the isolation runner made
    while they ran (:mod:`smug.isolation.runner`); that check after the stop took 7.5-9 s for the
    1600-block hard stem (top-k 3000) at load 13, and now the answer leaves within the grace."""
    return max(0.0, min(grace / 2, grace - HURRY_LEAD_S))


def start(config: ServerConfig) -> SmugServer:
    """Check the TLS files, bind, start workers and serve (returns at once).  Every start-up failure
    (bad TLS files, a port in use) raises before any worker starts and before the heavy imports."""
    from smug.server.tls import credentials

    creds = credentials(config)  # bad TLS files are start-up errors
    config.store_dir()
    from concurrent import futures

    import grpc

    from smug.server.interceptors import AuthInterceptor, WireGuard
    threads = config.handler_threads
    options = [("grpc.max_send_message_length", config.max_message_bytes),
               ("grpc.max_receive_message_length", config.max_message_bytes),
               ("grpc.so_reuseport", 0)]
    interceptors = ([AuthInterceptor(config.token)] if config.token else []) + [WireGuard()]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="smug-rpc"),
                         options=options, interceptors=interceptors)
    address = f"{config.host}:{config.port}"
    try:
        port = server.add_secure_port(address, creds) if creds is not None else server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"cannot bind {address} (in use, or not an address of this machine)")
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc  # heavy imports: after the checks
    from grpc_reflection.v1alpha import reflection

    from smug.proto import SERVICE, load
    from smug.server.pool import WorkerPool
    from smug.server.service import SmugService

    pb, pb_grpc = load()
    pool = WorkerPool(config.workers, config.worker_threads, config.memory_mb, config.grace, config.preload,
                      margin=config.deadline_margin)
    try:
        service = SmugService(config, pool)
        pb_grpc.add_SmugServicer_to_server(service, server)
        health_servicer = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        names = (pb.DESCRIPTOR.services_by_name["Smug"].full_name, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, server)
        server.start()
    except BaseException:
        pool.close(timeout=1.0)
        server.stop(0)
        raise
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
    p.add_argument("--max-streams", type=int, default=d.max_streams,
                   help=f"batch streams (SubmitBatch, WatchBatch) at once; beyond: RESOURCE_EXHAUSTED "
                        f"(default {d.max_streams})")
    p.add_argument("--max-message-mb", type=float, default=d.max_message_mb, help="gRPC message size limit")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_mb, help="ONNX upload cap")
    p.add_argument("--max-timeout", type=float, default=d.max_timeout, help="largest solver timeout allowed")
    p.add_argument("--deadline-margin", type=float, default=d.deadline_margin,
                   help="seconds kept between the solver timeout and the gRPC deadline")
    p.add_argument("--grace", type=float, default=d.grace,
                   help="a worker this long past its deadline is killed and replaced")
    p.add_argument("--memory-mb", type=int, default=None,
                   help="per-worker resident memory cap (default: 80%% of the machine's memory shared by the "
                        "workers, between 1 and 8 GB)")
    p.add_argument("--worker-threads", type=int, default=d.worker_threads,
                   help="torch / onnxruntime / BLAS threads per worker (default 1: one worker per core)")
    p.add_argument("--token", default=None,
                   help="require 'authorization: Bearer TOKEN' metadata (default: $SMUG_TOKEN if set)")
    p.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate chain (TLS on with --tls-key)")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key")
    p.add_argument("--tls-client-ca", type=Path, default=None,
                   help="mutual TLS: PEM CA certificate; clients must present a certificate it signed")
    p.add_argument("--upload-timeout", type=float, default=d.upload_timeout,
                   help=f"longest inspection of an uploaded model, and longest SubmitBatch stream, in seconds "
                        f"(default {d.upload_timeout})")
    p.add_argument("--store", type=Path, default=None, help="folder for uploaded models ($SMUG_CACHE/server-models)")
    p.add_argument("--farm-workers", type=int, default=None,
                   help="SubmitBatch: an embedded Dask cluster of this many process workers (default 1)")
    p.add_argument("--farm-scheduler", default=None, help="SubmitBatch: run batches on this Dask scheduler's cluster")
    p.add_argument("--preload", default="", help="comma-separated zoo models each worker loads at start")
    p.add_argument("--shutdown-grace", type=float, default=d.shutdown_grace,
                   help="seconds in-flight requests get on SIGTERM/SIGINT")


def config_from_args(a: argparse.Namespace) -> ServerConfig:
    return ServerConfig(host=a.host, port=a.port, workers=a.workers, max_queue=a.max_queue, max_streams=a.max_streams,
                        max_message_mb=a.max_message_mb, max_upload_mb=a.max_upload_mb, max_timeout=a.max_timeout,
                        deadline_margin=a.deadline_margin, grace=a.grace,
                        memory_mb=a.memory_mb if a.memory_mb is not None else default_memory_mb(a.workers),
                        worker_threads=a.worker_threads,
                        token=a.token if a.token is not None else os.environ.get("SMUG_TOKEN"),
                        tls_cert=a.tls_cert, tls_key=a.tls_key, tls_client_ca=a.tls_client_ca, store=a.store,
                        shutdown_grace=a.shutdown_grace, upload_timeout=a.upload_timeout,
                        preload=tuple(n for n in a.preload.split(",") if n), farm_workers=a.farm_workers,
                        farm_scheduler=a.farm_scheduler)


def serve_from_args(a: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT, then drain; the exit status."""
    from smug.server.logs import configure

    configure(sys.stderr)  # one JSON object a line, whoever logs (libraries and warnings included)
    config = config_from_args(a)
    srv = start(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logging.getLogger("smug.server").info(
        '{"event": "serving", "address": "%s:%d", "workers": %d, "tls": %s, "mtls": %s, "auth": %s}', config.host,
        srv.port, config.workers, "true" if config.tls_cert else "false", "true" if config.tls_client_ca else "false",
        "true" if config.token else "false")
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
