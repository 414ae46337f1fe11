"""What every benchmark script shares: where things are, the machine's load, markdown tables,
the sections of docs/benchmarks.md, and the common command-line options.

A section of the docs file lives between ``<!-- key:start -->`` and ``<!-- key:end -->``:
writing it again replaces it, so a re-run of a benchmark updates its own section only.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import smug

ROOT = Path(smug.__file__).resolve().parent  # the checkout (the package root)
DOC = ROOT / "docs" / "benchmarks.md"
OUT = ROOT / "out"  # benchmark stores (git-ignored)
SHARED_DATA = ROOT.parent / "shared" / "data"  # real data beside the checkout
IMAGENET = SHARED_DATA / "imagenet-sample"


# ---- the machine ------------------------------------------------------------------
def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, e.g. ``"0.57, 1.54, 1.79"``."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def uptime() -> str:
    """``uptime``'s line (time, up time, users, load), or the load averages where it is missing."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: " + load_average()


# ---- markdown -----------------------------------------------------------------------
def table(head: Iterable, rows: Iterable[Iterable]) -> list[str]:
    """A markdown table: the header line, the rule and one line per row (cells as ``str``)."""
    head = [str(c) for c in head]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    return lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def write_section(key: str, markdown: str, path: str | os.PathLike = DOC) -> Path:
    """Put ``markdown`` between the ``key`` markers of ``path`` (replacing what was there, else appended)."""
    path = Path(path)
    start, end = f"<!-- {key}:start -->", f"<!-- {key}:end -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    from smug.common import write_atomic

    return write_atomic(path, text.encode("utf-8"))


def section(title: str | None, command: str, body: str) -> str:
    """A section's markdown: ``## title``, the line ``Command: `command```, then ``body``."""
    head = [f"## {title}", ""] if title else []
    return "\n".join(head + [f"Command: `{command}`  ", body.strip()])


def append_section(path: str | os.PathLike | None, title: str | None, command: str, body: str,
                   key: str | None = None) -> str:
    """Write the section (:func:`section`) into the docs file ``path`` (default docs/benchmarks.md)
    under ``key`` (default: the title in lower case, non-alphanumerics as ``_``); returns its markdown."""
    md = section(title, command, body)
    key = key or re.sub(r"[^a-z0-9]+", "_", (title or "").lower()).strip("_")
    if not key:
        raise ValueError("a section needs a key or a title")
    write_section(key, md, path or DOC)
    return md


def publish(args: argparse.Namespace, key: str | None, title: str | None, command: str, body: str) -> str:
    """Print the section and, unless ``--no-doc``, write it into ``--doc`` (:func:`add_doc_args`)."""
    if args.no_doc:
        md = section(title, command, body)
    else:
        md = append_section(args.doc, title, command, body, key)
    print(md)
    return md


# ---- the command line -----------------------------------------------------------------
def invocation(module: str, prefix: str = "") -> str:
    """How this run was started, for the docs: ``[prefix ]python -m smug.bench.<module> <arguments>``."""
    return " ".join([*([prefix] if prefix else []), "python -m", f"smug.bench.{module}", *sys.argv[1:]])


def parser(doc: str | None, first_line: bool = False) -> argparse.ArgumentParser:
    """An argument parser whose description is the script's docstring (or its first line)."""
    doc = doc or ""
    if first_line:
        return argparse.ArgumentParser(description=doc.strip().splitlines()[0] if doc.strip() else None)
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_doc_args(ap: argparse.ArgumentParser) -> None:
    """``--doc PATH`` (the docs file to update) and ``--no-doc`` (alias ``--no-write``: print only)."""
    ap.add_argument("--doc", type=Path, default=DOC, help="markdown file to update (default: %(default)s)")
    ap.add_argument("--no-doc", "--no-write", dest="no_doc", action="store_true",
                    help="print the section, do not touch the docs file")


def add_photo_args(ap: argparse.ArgumentParser, images: int, every: int | None = None) -> None:
    """``--data`` (folder of ImageNet photos), ``--images N`` and, if ``every`` is given, ``--every K``."""
    ap.add_argument("--data", type=Path, default=IMAGENET, help="folder of *.JPEG photos (default: %(default)s)")
    ap.add_argument("--images", type=int, default=images, help="photos used (sorted by name)")
    if every is not None:
        ap.add_argument("--every", type=int, default=every, help="every K-th photo of the sorted folder")


def photos(data: str | os.PathLike = IMAGENET, n: int | None = None, every: int = 1) -> list[Path]:
    """Every ``every``-th ``*.JPEG`` of ``data`` in sorted order, the first ``n`` of them; exits when there are none."""
    files = sorted(Path(data).glob("*.JPEG"))[:: max(1, every)][:n]
    if not files:
        sys.exit(f"no images in {data}")
    return files
