"""smug.clients: the command line (``smug``) and the gRPC client (``Client``, imported on first use)."""


def __getattr__(name: str):
    if name == "Client":  # lazy: importing smug.clients stays cheap (no grpc)
        from smug.clients.client import Client

        return Client
    raise AttributeError(f"module 'smug.clients' has no attribute {name!r}")
