"""smug.server: the gRPC solver service (``smug serve``; see :mod:`smug.server.main`)."""
