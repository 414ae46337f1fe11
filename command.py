"""The ``smug`` executable: ``smug serve ...`` starts the service, every other command is the CLI.

The two front ends never import each other; this router is the only place that knows both.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["serve"]:
        from smug.server.main import main as serve

        serve(args[1:], prog="smug serve")
    else:
        from smug.clients.cli import main as cli

        cli(args)


if __name__ == "__main__":
    main()
