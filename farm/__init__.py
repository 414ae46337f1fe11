"""smug.farm: many explanations on a Dask cluster, resumable, each job ending exactly once.

    >>> from smug.farm import read_manifest, run
    >>> manifest = read_manifest("jobs.jsonl")              # every line checked by ExplainRequest.build
    >>> for result in run(manifest.jobs, store="results.sqlite", workers=2):
    ...     print(result.job_id, result.state, result.status)

A job is one :class:`~smug.pipeline.ExplainRequest` with a stable id (:mod:`smug.farm.jobs`).
Jobs run on Dask distributed workers (an embedded ``LocalCluster`` by default, or the
scheduler of a real cluster) through the one pipeline (:func:`smug.pipeline.run`, the
solve isolated in a child process); results stream back as they finish and the
submitting process alone writes them into a SQLite store (:class:`Store`), so a re-run
skips what is done and never duplicates a row.
"""

import importlib

# name -> module; imported on first use, so ``smug --help`` (which builds the farm's subcommands
# from smug.farm.commands) does not load Dask, SQLite or numpy
_EXPORTS = {"FarmError": "engine", "JobResult": "engine", "run": "engine", "Job": "jobs", "job_id": "jobs",
            "job_of": "jobs", "LineError": "manifest", "Manifest": "manifest", "ManifestError": "manifest",
            "grid_manifest": "manifest", "read_manifest": "manifest", "Store": "store"}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"smug.farm.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'smug.farm' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
