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

from smug.farm.engine import FarmError, JobResult, run
from smug.farm.jobs import Job, job_id, job_of
from smug.farm.manifest import LineError, Manifest, ManifestError, grid_manifest, read_manifest
from smug.farm.store import Store

__all__ = ["FarmError", "Job", "JobResult", "LineError", "Manifest", "ManifestError", "Store", "grid_manifest",
           "job_id", "job_of", "read_manifest", "run"]
