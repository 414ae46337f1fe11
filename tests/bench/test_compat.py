"""The CI slice of the compatibility matrix (issue 26, bench/compat.py) at 64 px: ResNet-18 from
the TorchScript exporter at opset 17 with a fixed batch of 1, MobileNetV3-small from the dynamo
exporter, and Grad-CAM's one-line refusal on a vision transformer."""

from __future__ import annotations

import numpy as np
import pytest

from smug.bench.compat import Cell, gradient_path, markdown, preprocess, run_cell
from smug.pipeline import ExplainRequest, run
from smug.pipeline.inputs import load_image

pytest.importorskip("torchvision")

SIZE = 64


def _request(path, method: str, **params):
    from smug.models.zoo import ASSETS

    return ExplainRequest.build(str(ASSETS / "siamese-cat.jpg"), str(path), method=method,
                                preprocess=preprocess(SIZE), **params)


def _certified(path, expected_path: str):
    """SMUG on the model: a mask whose certificate was checked, found by IG through the expected
    gradient path, whose torch copy matches onnxruntime on this input."""
    request = _request(path, "smug", timeout=10)
    e = run(request)
    assert e.status in ("optimal", "feasible") and e.certificate["valid"] is True
    subject = load_image(request)
    masked = subject.x * e.pixel_mask[None].astype(np.float32)  # masked-out value 0
    assert e.mask.sum() == e.objective and 0 < e.objective <= e.n_vars
    logits = subject.model.logits(masked[None])[0]
    assert int(logits.argmax()) == e.masked_prediction["class"]
    (gradients,) = e.encoding["gradients"].values()
    assert gradients["path"] == expected_path and gradients["max_abs_logit_error"] < 1e-4
    return e


def test_resnet18_torchscript_opset17_fixed_batch(torchvision_onnx):
    path = torchvision_onnx("resnet18", "ts17", "1", SIZE)
    _certified(path, "onnx graph evaluator")  # IG tails take smug's evaluator first (issue 29: no onnx2torch import)
    for method, params in (("gradient", {}), ("integrated_gradients", {"steps": 8}), ("gradcam", {})):
        e = run(_request(path, method, **params))
        assert e.status == "map" and e.saliency.shape == (SIZE, SIZE) and np.isfinite(e.saliency).all(), method
        assert np.abs(e.saliency).max() > 0, method


def test_gradient_path_row_names_the_path_the_error_and_the_first_layer(torchvision_onnx):
    path, error, first, seconds = gradient_path(torchvision_onnx("resnet18", "ts17", "1", SIZE))
    assert path == "onnx2torch" and float(error) < 1e-4 and first == "conv / Relu" and seconds.endswith(" s")


def test_mobilenet_v3_small_dynamo_exporter(torchvision_onnx):
    path = torchvision_onnx("mobilenet_v3_small", "dynamo", "1", SIZE)
    _certified(path, "onnx graph evaluator")
    e = run(_request(path, "integrated_gradients", steps=8))
    assert e.status == "map" and abs(e.encoding["params"]["completeness_error"]) < 0.5
    # Grad-CAM through the evaluator (its last Conv node) = Grad-CAM through onnx2torch's modules
    # on the TorchScript export of the same network
    ours = run(_request(path, "gradcam"))
    theirs = run(_request(torchvision_onnx("mobilenet_v3_small", "ts17", "1", SIZE), "gradcam"))
    assert ours.encoding["params"]["layer_shape"] == theirs.encoding["params"]["layer_shape"]
    np.testing.assert_allclose(ours.saliency, theirs.saliency, rtol=1e-3, atol=1e-5 * np.abs(theirs.saliency).max())


def test_gradcam_on_a_vision_transformer_is_one_error_line(torchvision_onnx, tmp_path):
    path = torchvision_onnx("vit_b_16", "ts17", "1", SIZE)
    cell = run_cell(path, "gradcam", SIZE, 10.0, tmp_path / "out")
    assert cell.status == "refused", cell
    assert cell.line.startswith("gradcam does not apply to this model: its last convolution is followed by "
                                "attention")
    assert not (tmp_path / "out").exists()


def test_matrix_table_has_a_cell_per_method_and_the_medians():
    rows = [("resnet18", "ts17", "1", {"smug": Cell("ok", 2.0, ""), "gradcam": Cell("refused", 0.5, "a | b")}),
            ("resnet18", "dynamo", "1", {"smug": Cell("ok", 4.0, ""), "gradcam": Cell("FAIL", 1.0, "boom")}),
            ("vit_b_16", "ts13", "1", {m: Cell("FAIL", 0.0, "export: UnsupportedOperatorError") for m in ("smug", "gradcam")})]
    md = markdown(rows, ["smug", "gradcam"], 64)
    assert "| resnet18 | ts17 | 1 | 64 | ok 2.0 s | refused: a / b |" in md
    assert "|  | 3.0 s | - |" in md  # medians over the ok cells only
    assert "Failures (tracebacks or wrong answers): 1. Cells of rows torch could not export (smug never ran): 2." in md


def test_matrix_log_resumes_rows_run_before_and_sizes_each_architecture(tmp_path, monkeypatch):
    """A row in the log is not run again; a row without every method's cell is; inception_v3 runs at
    its smallest size (75 px), the others at the size asked for."""
    import json

    import smug.bench.compat as compat

    log = tmp_path / "rows.jsonl"
    log.write_text(json.dumps({"arch": "resnet18", "exporter": "ts17", "batch": "1", "size": 64,
                               "cells": {"gradient": {"status": "ok", "seconds": 3.0, "line": ""}}}) + "\n")
    ran = []

    def export(arch, exporter, batch, size, path):
        ran.append((arch, size))
        path.write_bytes(b"")

    monkeypatch.setattr(compat, "export", export)
    monkeypatch.setattr(compat, "run_row", lambda path, ms, size, timeout, out, smug_timeout: {
        m: Cell("refused", 0.1, f"{m} {size}") for m in ms})
    rows = compat.run_matrix([("resnet18", "ts17", "1"), ("inception_v3", "ts17", "1")], ["gradient"], 64, 1.0,
                             tmp_path, log)
    assert ran == [("inception_v3", 75)] and rows[0][3]["gradient"] == Cell("ok", 3.0, "")
    assert rows[1][3]["gradient"].line == "gradient 75" and len(log.read_text().splitlines()) == 2
    assert compat.read_log(log, ["gradient", "rise"]) == {}  # a row lacking a method's cell runs again


def test_row_child_runs_the_command_line_per_method_and_classifies_each(torchvision_onnx, tmp_path, capsys):
    """One process, the command line's main per method: a map is ``ok``, an unknown method the one
    ``smug: error:`` line of a refusal."""
    import json

    from smug.bench.compat import row_cells, row_child

    methods = ["occlusion", "no_such_method", "rise"]
    row_child(torchvision_onnx("resnet18", "ts17", "1", SIZE), methods[:2], SIZE, 1.0, tmp_path)
    out = capsys.readouterr().out
    cells = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [(c["method"], c["status"]) for c in cells] == [("occlusion", "ok"), ("no_such_method", "refused")]
    assert "no_such_method" in cells[1]["line"] and (tmp_path / "occlusion" / "result.json").is_file()
    parsed = row_cells(out, methods)  # what the parent reads; a method the child never reached failed
    assert [parsed[m].status for m in methods] == ["ok", "refused", "FAIL"]
