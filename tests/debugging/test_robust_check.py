"""A robust answer re-checked by z3 on its dumps and by onnxruntime (issue 30): a subset-minimal
answer passes; a counterexample moved off its box, or a set that is not robust, is caught."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from smug.debugging.robust_check import COUNTEREXAMPLE, check_answer, header, prove
from smug.models.runtime import OnnxModel
from smug.pipeline.robust import explain_robust
from smug.pipeline.robust_config import RobustConfig
from smug.pipeline.robust_dump import answer_checks, robust_dump


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """(1, 3, 3) -> Gemm(9, 6) -> Relu -> Gemm(6, 3)."""
    r = np.random.default_rng(4)
    inits = [numpy_helper.from_array((np.round(r.normal(size=(6, 9)) * 8) / 8).astype(np.float32), "w1"),
             numpy_helper.from_array((np.round(r.normal(size=6) * 4) / 16).astype(np.float32), "b1"),
             numpy_helper.from_array((np.round(r.normal(size=(3, 6)) * 8) / 8).astype(np.float32), "w2"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b2")]
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "w1", "b1"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["a"]), helper.make_node("Gemm", ["a", "w2", "b2"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("robust") / "tiny.onnx"
    onnx.save(model, str(path))
    return str(path)


def test_a_subset_answer_passes_and_a_moved_counterexample_fails(net):
    model = OnnxModel.load(net)
    x = (np.random.default_rng(1).integers(0, 17, (1, 3, 3)) / 16).astype(np.float32)
    config = RobustConfig(epsilon=0.25)
    answer = explain_robust(model, x, config, timeout=20)
    assert answer.size > 0 and len(answer.counterexamples) == answer.size
    e_dump, why = answer_checks(model, x, config, answer)
    assert header(e_dump)["fixed"] == np.flatnonzero(answer.fixed).tolist()
    report = check_answer(e_dump, why, net, timeout=60)
    assert report.ok and report.robust == "robust" and report.replayed == answer.size
    j = why[0]
    moved = np.asarray(j.input, np.float64).copy()
    moved[header(j.dump)["fixed"] or 0] += 1.0  # off the box (or off x on a fixed entry)
    bad = check_answer(e_dump, [dataclasses.replace(j, input=moved)], net, timeout=60)
    assert not bad.ok and bad.failed == (j.feature,)
    # E without a feature is not robust: z3 finds a counterexample on its dump
    assert prove(j.dump, 60) == COUNTEREXAMPLE
    assert prove(robust_dump(model, x, config, answer.fixed, "smt2"), 60) == "robust"


def test_smug_check_confirms_a_robust_result_file(net, tmp_path):
    """``smug check DUMP RESULT`` on a robust dump: the result's E is proven robust; a result with
    another E is refused as not belonging to the dump."""
    import argparse
    import json

    from smug.debugging.commands import run_command
    from smug.debugging.reader import DumpError
    from smug.pipeline import explain

    x = (np.random.default_rng(1).integers(0, 17, (1, 3, 3)) / 16).astype(np.float32)
    e = explain(x, net, method="robust", epsilon=0.25, timeout=20)
    result = tmp_path / "result.json"
    result.write_text(json.dumps(e.to_json()))
    fixed = e.image.mask.ravel().astype(bool)
    dump = tmp_path / "e.smt2"
    dump.write_text(robust_dump(OnnxModel.load(net), x, RobustConfig(epsilon=0.25), fixed))
    args = argparse.Namespace(command="check", dump=str(dump), result=str(result), timeout=60.0, json=False)
    assert run_command(args) == 0
    other = fixed.copy()
    other[np.flatnonzero(fixed)[0]] = False
    dump.write_text(robust_dump(OnnxModel.load(net), x, RobustConfig(epsilon=0.25), other))
    with pytest.raises(DumpError, match="not the dump's"):
        run_command(args)


def test_dump_and_check_from_the_command_line(net, tmp_path):
    """``smug dump --method robust --result R`` writes E's question; ``smug check`` confirms it; the LP
    of the same question reads in HiGHS."""
    from smug.clients.cli import run_command as cli

    x = (np.random.default_rng(1).integers(0, 17, (1, 3, 3)) / 16).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "answer"
    base = [str(tmp_path / "x.npy"), "--model", net, "--method", "robust", "--epsilon", "0.25"]
    assert cli(["explain", *base, "--timeout", "20", "--out", str(out)]) == 0
    result = str(out / "result.json")
    assert cli(["dump", *base, "--result", result, "--out", str(tmp_path / "e.smt2")]) == 0
    assert cli(["check", str(tmp_path / "e.smt2"), result]) == 0
    assert cli(["dump", *base, "--out", str(tmp_path / "none.smt2")]) == 0  # nothing fixed: not robust here
    assert prove((tmp_path / "none.smt2").read_text(), 60) == COUNTEREXAMPLE
    assert cli(["dump", *base, "--result", result, "--format", "lp", "--out", str(tmp_path / "e.lp")]) == 0
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    assert h.readModel(str(tmp_path / "e.lp")) == highspy.HighsStatus.kOk
    h.run()
    assert h.getModelStatus() == highspy.HighsModelStatus.kInfeasible  # robust: no counterexample
