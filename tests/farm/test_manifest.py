"""Manifests (JSONL, CSV, generated grids), job ids and the store, without a cluster."""

from __future__ import annotations

import json

import numpy as np
import pytest

from smug.farm import ManifestError, Store, grid_manifest, job_id, read_manifest
from smug.farm.jobs import job_of
from smug.farm.manifest import build_line_request, parse_grid
from smug.farm.store import Record, pack_arrays, unpack_arrays
from smug.pipeline import ExplainRequest
from smug.pipeline.request import ImageBytes


def test_bad_lines_are_reported_with_their_numbers(tmp_path):
    (tmp_path / "digit.png").write_bytes(b"not checked before the run")
    lines = ['{"model": "mnist-mlp", "method": "whole-network"}',
             '',
             '# a comment',
             '{"model": "nope"}',
             '{"model": "mnist-mlp", "method": "smug", "top_k": -1}',
             '{"model": "mnist-mlp", "input": "missing.png"}',
             'not json',
             '{"model": "mnist-mlp", "method": "whole-network", "gamma": 0.5}',
             '{"model": "mnist-mlp", "input": "digit.png", "name": "relative to the manifest"}',
             '{"model": "mnist-mlp", "method": "whole-network", "name": "same job as line 1"}']
    path = tmp_path / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    m = read_manifest(path)
    assert [e.line for e in m.errors] == [4, 5, 6, 7, 8]
    assert "unknown model 'nope'" in str(m.errors[0]) and "top_k" in m.errors[1].message
    assert "missing.png" in m.errors[2].message and "not JSON" in m.errors[3].message
    assert "gamma" in m.errors[4].message
    assert [j.line for j in m.jobs] == [1, 9] and m.duplicates == ((10, 1),)
    with pytest.raises(ManifestError, match=r"5 invalid manifest line\(s\): line 4: unknown model"):
        m.checked()
    assert m.checked(skip_invalid=True) is m


def test_csv_manifest(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("model,method,top_k,window,text,timeout,name\n"
                    "mnist-mlp,smug,5,1,,10,a\n"
                    "text-cnn,smug,20,,a gorgeous film,,b\n"
                    "mnist-mlp,smug,zero,1,,,c\n")
    m = read_manifest(path)
    assert [j.name for j in m.jobs] == ["a", "b"]
    assert m.jobs[0].request.config.top_k == 5 and m.jobs[0].request.timeout == 10
    assert m.jobs[1].request.input.text == "a gorgeous film"
    assert [e.line for e in m.errors] == [4]


def test_grid_leaves_out_parameters_a_method_does_not_take(tmp_path):
    for i in range(2):
        (tmp_path / f"d{i}.png").write_bytes(b"png %d" % i)
    grid = parse_grid(["top_k=10,20", "gamma=0,0.5"])
    assert grid == {"top_k": [10, 20], "gamma": [0, 0.5]}
    m = grid_manifest([str(tmp_path / "*.png")], ["mnist-mlp"], ["smug", "whole-network"], grid, timeout=5)
    assert not m.errors
    assert len(m.jobs) == 2 * (4 + 1)  # per image: 4 grid points of smug, 1 whole-network job
    assert [j.line for j in m.jobs] == list(range(1, 11))
    assert {j.request.timeout for j in m.jobs} == {5.0}
    with pytest.raises(ValueError, match="matches no file"):
        grid_manifest([str(tmp_path / "*.jpg")], ["mnist-mlp"], ["smug"])
    with pytest.raises(ValueError, match="NAME=V1,V2"):
        parse_grid(["top_k"])


def test_job_ids_follow_content_and_parameters_not_labels(tmp_path, digits):
    png = tmp_path / "a.png"
    png.write_bytes(b"same bytes")
    (tmp_path / "b.png").write_bytes(b"same bytes")
    a = ExplainRequest.build(str(png), "mnist-mlp", gamma=0, name="a")
    assert job_id(a) == job_id(ExplainRequest.build(str(tmp_path / "b.png"), "mnist-mlp", gamma=0.0, name="b"))
    assert job_id(a) == job_id(ExplainRequest.build(ImageBytes(b"same bytes"), "mnist-mlp"))  # defaults filled in
    assert job_id(a) != job_id(ExplainRequest.build(str(png), "mnist-mlp", gamma=0.5))
    assert job_id(a) != job_id(ExplainRequest.build(str(png), "mnist-mlp", timeout=5))
    x, y = digits[0], digits[1]
    assert job_id(ExplainRequest.build(x, "mnist-mlp")) == job_id(ExplainRequest.build(x.copy(), "mnist-mlp"))
    assert job_id(ExplainRequest.build(x, "mnist-mlp")) != job_id(ExplainRequest.build(y, "mnist-mlp"))
    assert len(job_id(a)) == 64


def test_model_files_are_identified_by_content(tmp_path, tiny_onnx):
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(tiny_onnx.read_bytes())
    x = np.zeros((1, 4, 4), np.float32)
    assert job_id(ExplainRequest.build(x, str(tiny_onnx))) == job_id(ExplainRequest.build(x, str(copy)))
    copy.write_bytes(tiny_onnx.read_bytes() + b" ")
    assert job_id(ExplainRequest.build(x, str(tiny_onnx))) != job_id(ExplainRequest.build(x, str(copy)))


def test_store_keeps_one_row_per_job(tmp_path):
    jobs = [job_of(ExplainRequest.build(None, "mnist-mlp", method="whole-network", delta=d), i + 1)
            for i, d in enumerate((0, 1, 2))]
    with Store(tmp_path / "s.sqlite") as s:
        assert s.add(jobs) == 3 and s.add(jobs) == 0
        assert s.todo([j.id for j in jobs]) == {j.id for j in jobs}
        s.finish(Record(jobs[0].id, "done", {"status": "optimal", "objective": 3, "certificate": {"valid": True}}))
        s.finish(Record(jobs[1].id, "failed", reason="killed its worker 3 times", attempts=3))
        assert s.counts() == {"pending": 1, "done": 1, "failed": 1, "total": 3}
        assert s.todo([j.id for j in jobs]) == {jobs[2].id}
        assert s.todo([j.id for j in jobs], retry_failed=True) == {jobs[1].id, jobs[2].id}
        assert s.failures()[0]["reason"] == "killed its worker 3 times" and s.failures()[0]["line"] == 2
        assert [r["id"] for r in s.rows()] == [j.id for j in jobs]
    arrays = {"mask": np.eye(3, dtype=bool), "saliency": np.arange(4.0), "base_mask": None}
    back = unpack_arrays(pack_arrays(arrays))
    assert set(back) == {"mask", "saliency"} and back["mask"].dtype == bool and np.array_equal(back["mask"], np.eye(3))
    big = {"saliency": np.zeros((300, 300))}  # past COMPRESS_ABOVE: compressed, and read back the same
    blob = pack_arrays(big)
    assert len(blob) < big["saliency"].nbytes // 10 and np.array_equal(unpack_arrays(blob)["saliency"], big["saliency"])


def test_line_fields(tmp_path):
    r = build_line_request({"model": "mnist-mlp", "method": "smug", "params": {"top_k": 7}, "window": 1})
    assert r.config.top_k == 7 and r.config.window == 1
    with pytest.raises(ValueError, match="given twice"):
        build_line_request({"model": "mnist-mlp", "params": {"top_k": 7}, "top_k": 8})
    with pytest.raises(ValueError, match="no model"):
        build_line_request({"method": "smug"})
    assert json.loads(json.dumps(r.to_json()))["model"] == "mnist-mlp"
