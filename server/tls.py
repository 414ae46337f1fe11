"""TLS material for ``smug serve``, checked before anything starts: missing files, a key that is
not the certificate's, a key given as the certificate, or an unreadable client CA are start-up
errors (``ValueError``), so the server exits at once instead of serving without them."""

from __future__ import annotations

import ssl
from pathlib import Path

from smug.server.config import ServerConfig


def credentials(config: ServerConfig):
    """``grpc.ServerCredentials`` for the config's TLS files (mutual TLS with a client CA), or None."""
    if config.tls_cert is None:
        return None
    cert, key = _read(config.tls_cert, "--tls-cert"), _read(config.tls_key, "--tls-key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    except ssl.SSLError as exc:
        raise ValueError(f"--tls-cert {config.tls_cert} and --tls-key {config.tls_key} are not a PEM certificate "
                         f"chain and its private key ({exc.reason or exc})") from None
    ca = None
    if config.tls_client_ca is not None:
        ca = _read(config.tls_client_ca, "--tls-client-ca")
        try:
            ctx.load_verify_locations(cafile=str(config.tls_client_ca))
        except ssl.SSLError as exc:
            raise ValueError(f"--tls-client-ca {config.tls_client_ca} is not a PEM CA certificate "
                             f"({exc.reason or exc})") from None
    import grpc

    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def _read(path: Path | None, option: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{option} {path}: cannot read it ({exc.strerror or exc})") from None
    if not data.strip():
        raise ValueError(f"{option} {path} is empty")
    return data
