"""Farm job ids are request identities (issue 27): a plain and a keep-class request on one input are two
jobs with their own answers, end to end on a LocalCluster; rows of an older id scheme are named, kept
and recomputed."""

from __future__ import annotations

import json

import pytest

from smug.farm import Store, job_of, read_manifest, run
from smug.farm.commands import _say_superseded
from smug.farm.jobs import SCHEME, job_id
from smug.pipeline import ExplainRequest
from smug.pipeline import run as run_one
from smug.pipeline.identity import identity

pytest.importorskip("distributed")


def test_a_job_id_is_the_request_identity():
    a = ExplainRequest.build(None, "mnist-mlp")
    b = ExplainRequest.build(None, "mnist-mlp", keep_class=True, min_confidence=0.9)
    assert job_id(a) == identity(a) and job_id(b) == identity(b) and job_id(a) != job_id(b)


def test_plain_and_keep_class_lines_run_as_two_jobs_with_their_own_answers(client, tmp_path, digit_pngs):
    """The issue's wrong answer: one manifest, one photo, a plain and a keep-class request."""
    png = digit_pngs[0]
    lines = [{"input": str(png), "model": "mnist-mlp", "top_k": 30, "timeout": 20},
             {"input": str(png), "model": "mnist-mlp", "top_k": 30, "timeout": 20, "keep_class": True},
             {"input": str(png), "model": "mnist-mlp", "top_k": 30, "timeout": 20, "keep_class": True,
              "min_confidence": 0.9}]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    m = read_manifest(manifest)
    assert not m.errors and not m.duplicates and len({j.id for j in m.jobs}) == 3
    db = tmp_path / "r.sqlite"
    results = {r.job_id: r for r in run(m.jobs, store=db, client=client)}
    assert len(results) == 3
    for job in m.jobs:
        got, want = results[job.id], run_one(job.request)
        assert got.state == "done", got.reason
        assert got.result["identity"] == job.id == want.identity
        assert (got.status, got.objective, got.result["mask_blocks"]) == (want.status, want.objective,
                                                                          want.to_json()["mask_blocks"])
        keep = got.result["encoding"].get("keep_class")
        assert (keep is None) == (job.request.keep is None)  # the keep-class jobs ran the keep-class ladder
        assert got.result["request"]["keep_class"] == want.request["keep_class"]
    plain, kept, confident = (results[j.id] for j in m.jobs)
    assert plain.result["request"]["keep_class"] is None
    assert kept.result["request"]["keep_class"] == {"min_confidence": None}
    assert confident.result["request"]["keep_class"] == {"min_confidence": 0.9}


def test_rows_of_an_older_id_scheme_are_named_and_recomputed(tmp_path, digit_pngs, capsys):
    png = digit_pngs[0]
    manifest = tmp_path / "jobs.jsonl"
    manifest.write_text(json.dumps({"input": str(png), "model": "mnist-mlp", "name": "d0"}) + "\n"
                        + json.dumps({"input": str(png), "model": "mnist-mlp", "keep_class": True}) + "\n")
    jobs = read_manifest(manifest).jobs
    db = tmp_path / "old.sqlite"
    with Store(db) as s:  # what smug 0.1.0 wrote for line 1: another id, no id_scheme in the request
        s.add([job_of(jobs[0].request, 1)])
        old = "f" * 64
        s.db.execute("UPDATE jobs SET id=?, request=?, state='done' WHERE id=?",
                     (old, json.dumps(jobs[0].request.to_json()), jobs[0].id))
        s.db.commit()
        assert json.loads(s.db.execute("SELECT request FROM jobs WHERE id=?", (old,)).fetchone()[0]).get(
            "id_scheme") is None
        gone = s.superseded(jobs)
        assert [(r["id"], r["line"], r["id_scheme"], r["state"]) for r in gone] == [(old, 1, 1, "done")]
        s.add(jobs)  # this run's rows: the old one is kept beside them, readable and exportable
        assert s.todo([j.id for j in jobs]) == {j.id for j in jobs}
        assert s.counts()["total"] == 3 and old in s.ids()
        assert all(json.loads(r)["id_scheme"] == SCHEME for (r,) in
                   s.db.execute("SELECT request FROM jobs WHERE id != ?", (old,)))
    _say_superseded(str(db), jobs)
    err = capsys.readouterr().err
    assert "1 job(s) of this run were stored under an older id scheme" in err
    assert f"line 1: {png}, mnist-mlp, smug (id scheme 1, done)" in err
    with Store(db) as s:
        s.add(jobs)
    _say_superseded(str(db), [jobs[1]])  # line 2 has no older row: nothing to say
    assert capsys.readouterr().err == ""
