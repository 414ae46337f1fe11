"""A farm job: one validated request and its stable id.

A job's id is the request's identity (:func:`smug.pipeline.identity.identity`): the sha256 of
a canonical JSON document derived from every field of the request and of its method config
(defaults filled in, so ``top_k`` left out and ``top_k=3000`` are one job), with the input's
and the model's content hashes and the smug version.  The job name and the input's path are
labels, not part of the id: the same photo under two names is one job.  Ids are of id
scheme :data:`~smug.pipeline.identity.SCHEME`; the store records it per row.
"""

from __future__ import annotations

from dataclasses import dataclass

from smug.pipeline import ExplainRequest
from smug.pipeline.identity import SCHEME, file_sha256, identity, smug_version  # noqa: F401 (the farm's names)


@dataclass(frozen=True)
class Job:
    """One request of a batch, with its id and where it came from (a manifest line)."""

    id: str
    request: ExplainRequest
    line: int | None = None  # 1-based line (or row) of the manifest

    @property
    def name(self) -> str | None:
        return self.request.name


def job_of(request: ExplainRequest | Job, line: int | None = None) -> Job:
    """``request`` as a :class:`Job` (a job is returned as it is)."""
    if isinstance(request, Job):
        return request
    return Job(job_id(request), request, line)


def job_id(request: ExplainRequest) -> str:
    """The stable id of ``request``: its identity (see the module's docstring)."""
    return identity(request)
