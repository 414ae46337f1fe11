"""Batch manifests: JSON Lines, CSV, or a grid made on the command line; every line checked first.

A JSONL line is an object::

    {"input": "photos/cat.jpg", "model": "efficientnet-lite0", "method": "smug", "top_k": 3000, "name": "cat"}
    {"model": "text-cnn", "text": "a gorgeous, funny film", "params": {"top_k": 50}}
    {"model": "mnist-mlp", "method": "whole-network", "timeout": 10}

Keys: ``input`` (an image path; absent: the zoo model's demo input), ``text``, ``model``,
``method``, ``backend``, ``target``, ``timeout``, ``name``, ``keep_class``, ``preprocess``
(the named arguments of :meth:`~smug.pipeline.ExplainRequest.build`); every other key (or the keys of
``params``) is a method parameter (``top_k``, ``gamma``, ``window``, ``delta``, ...).  A
CSV manifest has the same names as its header; an empty cell leaves the key out and a
parameter cell is read as JSON when it parses (``3000``, ``0.5``, ``["smug"]``), as text
otherwise.  Relative input and model paths are looked up in the manifest's folder first,
then in the working folder.

Each line becomes an :class:`~smug.pipeline.ExplainRequest` through
:meth:`~smug.pipeline.ExplainRequest.build`, so a bad line is refused with the same words
as a single request, and its line number, before anything is submitted.  The manifest is
read line by line and its jobs are kept on disk (:mod:`smug.farm.spool`), so its length does
not bound the submitting process's memory.
"""

from __future__ import annotations

import csv
import glob
import inspect
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Sequence

from smug.farm.jobs import Job, job_of
from smug.farm.spool import Spool
from smug.pipeline import ExplainRequest, RequestError
from smug.pipeline.request import zoo_kind

# a line's own keys: the named arguments of ExplainRequest.build (every other key is a method parameter)
REQUEST_KEYS = tuple(name for name, p in inspect.signature(ExplainRequest.build).parameters.items()
                     if p.kind is not inspect.Parameter.VAR_KEYWORD)


class ManifestError(ValueError):
    """A manifest with bad lines; ``errors`` lists them (line numbers and reasons)."""

    def __init__(self, errors: Iterable["LineError"]):
        self.errors = tuple(errors)
        shown = "; ".join(str(e) for e in self.errors[:5])
        more = f" (and {len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        super().__init__(f"{len(self.errors)} invalid manifest line(s): {shown}{more}; "
                         f"--skip-invalid runs the others")


@dataclass(frozen=True)
class LineError:
    """A manifest line that cannot be run."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Manifest:
    """The valid jobs of a manifest (first occurrence of each id), its bad lines, and repeated lines."""

    jobs: Sequence[Job]  # a Spool: on disk, read in order as often as needed
    errors: tuple[LineError, ...] = ()
    duplicates: tuple[tuple[int, int], ...] = ()  # (line, the earlier line with the same job id)

    def checked(self, skip_invalid: bool = False) -> "Manifest":
        """This manifest, or :class:`ManifestError` when it has bad lines and ``skip_invalid`` is false."""
        if self.errors and not skip_invalid:
            raise ManifestError(self.errors)
        return self


def read_manifest(path: str | Path, fmt: str | None = None) -> Manifest:
    """A JSONL or CSV manifest (``fmt``, default: ``csv`` for a ``.csv`` file, JSON Lines otherwise),
    read line by line; its jobs are kept on disk (:class:`~smug.farm.spool.Spool`)."""
    path = Path(path)
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown manifest format {fmt!r}: jsonl or csv")
    with open(path, "rb") as f:
        lines = _decoded(f)
        return collect(_built(csv_rows(lines) if fmt == "csv" else jsonl_rows(lines), path.parent))


def _decoded(f: BinaryIO) -> Iterator[str]:
    """The lines of a binary file as text (line ends kept); :class:`ManifestError` at the first that is not UTF-8."""
    for number, raw in enumerate(f, 1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError([LineError(number, "not UTF-8 text")]) from None


def jsonl_rows(lines: Iterable[str]) -> Iterable[tuple[int, dict | LineError]]:
    """(line number, fields or the error) for every non-blank line that is not a ``#`` comment."""
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, LineError(number, f"not JSON: {exc.msg} (column {exc.colno})")
            continue
        yield number, fields if isinstance(fields, dict) else LineError(number, "a line must be a JSON object")


def csv_rows(lines: Iterable[str]) -> Iterable[tuple[int, dict | LineError]]:
    """(line number, fields) for every data row of CSV lines with a header."""
    reader = csv.DictReader(lines)
    for row in reader:
        number = reader.line_num
        if None in row:
            yield number, LineError(number, f"more cells than the header's {len(reader.fieldnames or [])} columns")
            continue
        fields = {k.strip(): _cell(k.strip(), v) for k, v in row.items() if k and v is not None and v.strip() != ""}
        if fields:
            yield number, fields


def _cell(key: str, value: str):
    value = value.strip()
    if key in ("input", "text", "model", "method", "backend", "name"):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def build_line_request(fields: dict, base: Path | None = None) -> ExplainRequest:
    """The request of one manifest line (:class:`RequestError` names what is wrong)."""
    fields = dict(fields)
    params = fields.pop("params", None) or {}
    if not isinstance(params, dict):
        raise RequestError("'params' must be an object of method parameters")
    own = {k: fields.pop(k) for k in REQUEST_KEYS if k in fields}
    clash = sorted(set(params) & set(fields))
    if clash:
        raise RequestError(f"parameters {clash} given twice (in 'params' and beside it)")
    params.update(fields)
    for key in ("input", "model"):
        if isinstance(own.get(key), str):
            own[key] = _resolve(own[key], base, zoo=key == "model")
    if "model" not in own:
        raise RequestError("no model: give a zoo name or an .onnx path")
    for key in ("input", "text", "model", "method", "backend", "name"):
        if key in own and own[key] is not None and not isinstance(own[key], str):
            raise RequestError(f"'{key}' must be a string, got {own[key]!r}")
    return ExplainRequest.build(own.pop("input", None), own.pop("model"), **own, **params)


def _resolve(value: str, base: Path | None, zoo: bool) -> str:
    if base is None or (zoo and zoo_kind(value) is not None) or Path(value).is_absolute():
        return value
    here = base / value
    return str(here) if here.exists() else value


def _built(rows: Iterable[tuple[int, dict | LineError]], base: Path | None) -> Iterable[tuple[int, Job | LineError]]:
    for number, fields in rows:
        if isinstance(fields, LineError):
            yield number, fields
            continue
        try:
            yield number, job_of(build_line_request(fields, base), number)
        except (ValueError, TypeError, OSError) as exc:  # RequestError is a ValueError
            yield number, LineError(number, str(exc))


def collect(built: Iterable[tuple[int, Job | LineError]]) -> Manifest:
    """Jobs in order (the first line of each id, kept on disk), errors, and repeated lines."""
    jobs, errors, duplicates = Spool(), [], []
    for number, item in built:
        if isinstance(item, LineError):
            errors.append(item)
        elif not jobs.add(item):
            duplicates.append((number, jobs.line_of(item.id)))
    return Manifest(jobs, tuple(errors), tuple(duplicates))


# ---- generated on the command line ----------------------------------------------------
def parse_grid(items: Iterable[str]) -> dict[str, list]:
    """``["top_k=1000,3000", "gamma=0,0.5"]`` -> ``{"top_k": [1000, 3000], "gamma": [0, 0.5]}``."""
    grid = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ValueError(f"--grid takes NAME=V1,V2,...; got {item!r}")
        grid[key.strip().replace("-", "_")] = [_cell(key, v) for v in values.split(",")]
    return grid


def grid_manifest(images: Iterable[str], models: Iterable[str], methods: Iterable[str],
                  grid: dict[str, list] | None = None, **common) -> Manifest:
    """One job per image (glob patterns expanded, sorted) x model x method x grid point.

    A grid parameter that a method does not take (``gamma`` for whole-network) is left
    out of that method's jobs, as ``ExplainRequest.build`` says; ``common`` (``timeout``,
    ``backend``, ...) goes to every job.  Jobs are numbered from 1 in that order."""
    grid = grid or {}
    files = _expand(images)
    keys = list(grid)
    rows = []
    for image, model, method in itertools.product(files or [None], models, methods):
        takes = [k for k in keys if _takes(model, method, k, grid[k][0])]
        seen = set()
        for values in itertools.product(*(grid[k] for k in takes)):
            point = dict(zip(takes, values))
            fields = {**common, **point, "model": model, "method": method}
            if image is not None:
                fields["input"] = image
            key = json.dumps(fields, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                rows.append(fields)
    return collect(_built(enumerate(rows, 1), None))


def _expand(patterns: Iterable[str]) -> list[str]:
    files = []
    for pattern in patterns:
        found = sorted(glob.glob(pattern, recursive=True))
        if not found:
            raise ValueError(f"--images {pattern!r} matches no file")
        files += [f for f in found if f not in files]
    return files


def _takes(model: str, method: str, key: str, value) -> bool:
    """Whether ``method`` of ``model`` takes parameter ``key`` (asked of ExplainRequest.build)."""
    try:
        ExplainRequest.build(None, model, method=method, **{key: value})
    except RequestError as exc:
        return "do not apply" not in str(exc) or repr(key) not in str(exc)
    return True
