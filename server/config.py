"""Server settings (``smug serve`` options) in one typed record."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

CHEAP_THREADS = 8  # gRPC handler threads beyond the admitted requests and streams (ServerConfig.handler_threads)


def default_memory_mb(workers: int | None = None) -> int:
    """Per-worker resident memory cap: an equal share of 80% of the machine's memory (the server
    and the solver children need the rest), at least 1 GB and at most 8 GB."""
    try:
        total_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError, AttributeError):
        return 4096
    share = int(0.8 * total_mb / max(1, workers or os.cpu_count() or 1))
    return max(1024, min(8192, share))


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051  # 0: the OS picks a free port (tests)
    workers: int = max(1, os.cpu_count() or 1)  # solver processes
    max_queue: int = 8  # requests that may wait for a worker; beyond: RESOURCE_EXHAUSTED at once
    max_message_mb: float = 100.0  # gRPC send/receive limit
    max_upload_mb: float = 64.0  # ONNX upload cap (RegisterModel)
    max_timeout: float = 600.0  # largest solver timeout a request may ask for
    deadline_margin: float = 1.0  # solver timeout = gRPC deadline - margin (time to assemble and send)
    grace: float = 2.0  # a worker past its deadline (or solver timeout) + grace is killed and replaced
    memory_mb: int = field(default_factory=default_memory_mb)  # a worker over this resident memory is replaced
    worker_threads: int = 1  # torch / onnxruntime / BLAS threads per worker
    token: str | None = None  # bearer token required in the "authorization" metadata
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # mutual TLS: clients must present a certificate signed by this CA
    store: Path | None = None  # uploaded models (default: $SMUG_CACHE/server-models)
    shutdown_grace: float = 30.0  # seconds in-flight requests get to finish on shutdown
    upload_timeout: float = 60.0  # longest upload inspection and longest SubmitBatch stream (a deadline may cut it)
    preload: tuple[str, ...] = ()  # zoo models each worker loads at start
    inspect_zoo: bool = True  # inspect the zoo models in the background at start (tests turn it off)
    farm_workers: int | None = None  # SubmitBatch: an embedded Dask cluster of this many workers (default 1) ...
    farm_scheduler: str | None = None  # ... or this Dask scheduler's cluster (tcp://HOST:8786)
    max_batch_jobs: int = 10000  # requests one SubmitBatch may carry
    max_streams: int = 4  # batch streams (SubmitBatch, WatchBatch) at once; beyond: RESOURCE_EXHAUSTED at once

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.max_queue < 0:
            raise ValueError("max-queue must be >= 0")
        if not 0 < self.max_upload_mb <= self.max_message_mb:
            raise ValueError("the upload cap must be positive and at most the message size limit")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both --tls-cert and --tls-key")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")
        if self.token is not None and not self.token.strip():
            raise ValueError("the token is empty (an unset variable in --token \"$SECRET\"?): give a non-empty "
                             "token, or leave --token and $SMUG_TOKEN out to serve without authentication")
        if self.farm_workers is not None and self.farm_scheduler is not None:
            raise ValueError("give either --farm-workers (an embedded Dask cluster) or --farm-scheduler, not both")
        if (self.farm_workers is not None and self.farm_workers < 1) or self.max_batch_jobs < 1:
            raise ValueError("farm workers and the batch size cap must be >= 1")
        if self.max_streams < 1:
            raise ValueError("max-streams must be >= 1")
        if self.upload_timeout <= 0 or self.shutdown_grace < 0:
            raise ValueError("upload timeout must be > 0 and shutdown grace >= 0")
        if self.deadline_margin < 0 or self.grace < 0:
            raise ValueError("deadline margin and grace must be >= 0")

    @property
    def handler_threads(self) -> int:
        """gRPC handler threads: one per admitted request (running or queued) and batch stream, plus
        :data:`CHEAP_THREADS` that only unadmitted RPCs use (health, ListModels, refusals), so a
        server at its admission limits still answers those at once."""
        return self.workers + self.max_queue + self.max_streams + CHEAP_THREADS

    @property
    def max_message_bytes(self) -> int:
        return int(self.max_message_mb * 2**20)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    def store_dir(self) -> Path:
        if self.store is not None:
            path = Path(self.store)
        else:
            from smug.common import cache_dir

            path = cache_dir() / "server-models"
        path.mkdir(parents=True, exist_ok=True)
        return path
