"""``smug farm export``: a store's jobs as JSON Lines, CSV or Parquet, read back without recomputation.

JSON Lines carry each job's scalar columns, its request and (for done jobs) the full
explanation document (status, certificate, mask blocks, timings, ...); CSV and Parquet
carry the scalar columns, the request's parameters as JSON and a few facts of the
answer (target, confidence, mask fraction, whether the masked input keeps its class).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable

from smug.farm.store import SCALARS, STATES, Store

FORMATS = ("jsonl", "csv", "parquet")
FLAT = (*SCALARS, "target", "confidence", "mask_fraction", "keeps_class", "config")


def flat_row(row: dict) -> dict:
    """A job's scalar columns plus a few facts of its answer (for CSV and Parquet)."""
    r = row.get("result") or {}
    out = {k: row.get(k) for k in SCALARS}
    out.update(target=r.get("target"), confidence=r.get("confidence"), mask_fraction=r.get("mask_fraction"),
               keeps_class=(r.get("masked_prediction") or {}).get("keeps_class"),
               config=json.dumps(row["request"].get("config"), sort_keys=True))
    return out


def export(store: Store, fmt: str, out: str | Path | None = None, states: Iterable[str] = STATES) -> bytes:
    """The export as bytes (also written to ``out`` when given)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}: {', '.join(FORMATS)}")
    rows = store.rows(states, results=True)
    if fmt == "jsonl":
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, FLAT)
        w.writeheader()
        w.writerows(flat_row(r) for r in rows)
        data = buf.getvalue().encode()
    else:
        data = _parquet([flat_row(r) for r in rows])
    if out is not None:
        from smug.common import write_atomic

        write_atomic(out, data)
    return data


def _parquet(rows: list[dict]) -> bytes:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("Parquet export needs pyarrow (pip install pyarrow); jsonl and csv need nothing") from None
    table = pa.Table.from_pylist(rows) if rows else pa.table({k: pa.array([], pa.string()) for k in FLAT})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
