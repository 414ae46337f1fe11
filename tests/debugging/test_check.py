"""smug check: accepts the real answers, rejects tampered ones with the failing row or a smaller mask,
and refuses bad input with one clear line."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from smug.debugging import DumpError, read_dump
from smug.debugging.check import check, load_result, mask_of
from smug.debugging.commands import add_commands, dump_arguments, run_command
from smug.debugging.solve import network_run
from smug.solver.dump_formats import end_line

CASES = [("first-layer", "smt2"), ("first-layer", "lp"), ("first-layer", "mps"), ("whole-network", "smt2"),
         pytest.param("whole-network", "lp", marks=pytest.mark.slow),  # HiGHS on the big-M model: ~15 s
         ("text", "smt2"), ("text", "wcnf"), ("text", "lp")]


@pytest.mark.parametrize("kind,fmt", CASES)
def test_accepts_the_real_result(artefacts, kind, fmt):
    report = check(artefacts[kind][fmt], artefacts[kind]["result"])
    assert report.ok, report.message
    assert report.size == report.optimum == load_result(artefacts[kind]["result"])["objective"]
    assert report.message.startswith("ok: ")


def _tampered(result: dict, dump, drop: bool) -> dict:
    """The result with one kept variable removed, or one added that keeps every row."""
    on = mask_of(dump, result)
    names = sorted(on) if drop else [n for n in dump.variables if n not in on]
    for name in names:
        new = on - {name} if drop else on | {name}
        holds = (network_run(dump, new)[0] is None if dump.network else
                 all(any((n in new) == v for n, v in c) for _, c in dump.clauses) if dump.clauses else
                 all(r.holds(new) for r in dump.rows))
        if drop or holds:
            break
    else:
        pytest.skip("no added variable keeps every row")
    res = json.loads(json.dumps(result))
    variables = dump.meta["variables"]
    if dump.kind == "text":
        row = next(r for r in res["text"]["rows"] if r["method"] == "smug")
        row["selected"] = [variables_name in new for variables_name in
                           sorted(variables, key=lambda n: variables[n]["word"])]
    else:
        res["mask_blocks"] = sorted(variables[n]["block"] for n in new)
    return res


@pytest.mark.parametrize("kind,fmt", [("first-layer", "smt2"), ("whole-network", "smt2"), ("text", "wcnf"),
                                      ("text", "smt2"), ("first-layer", "lp")])
def test_rejects_a_removed_block_naming_the_row(artefacts, tmp_path, kind, fmt):
    dump = read_dump(artefacts[kind][fmt])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_tampered(load_result(artefacts[kind]["result"]), dump, drop=True)))
    report = check(artefacts[kind][fmt], bad)
    assert not report.ok and report.message.startswith("fails row "), report.message


@pytest.mark.parametrize("kind,fmt", [("first-layer", "smt2"), ("whole-network", "smt2"), ("text", "wcnf"),
                                      ("text", "smt2")])
def test_rejects_an_added_block_with_a_smaller_mask(artefacts, tmp_path, kind, fmt):
    dump = read_dump(artefacts[kind][fmt])
    result = load_result(artefacts[kind]["result"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_tampered(result, dump, drop=False)))
    report = check(artefacts[kind][fmt], bad)
    assert not report.ok
    assert report.message.startswith(f"a smaller mask exists: {result['objective']} instead of "
                                      f"{result['objective'] + 1}"), report.message


def test_a_truncated_dump_is_one_clear_error(artefacts, tmp_path):
    text = artefacts["text"]["smt2"].read_text()
    cut = tmp_path / "cut.smt2"
    cut.write_text(text[: len(text) // 2])
    with pytest.raises(DumpError, match=r"is truncated: it ends at line \d+ without the 'smug-dump end' line") as e:
        check(cut, artefacts["text"]["result"])
    assert "\n" not in str(e.value)


def _resealed(text: str, fmt: str) -> str:
    """``text`` with its end line's sha256 made to match its (edited) contents again."""
    body = text[: text.rstrip().rfind("\n") + 1]
    return body + end_line(fmt, body)


def test_a_damaged_body_is_one_clear_error(artefacts, tmp_path):
    text = artefacts["text"]["smt2"].read_text()
    broken = tmp_path / "broken.smt2"
    broken.write_text(text.replace("(assert (>", "(assert (> (", 1))
    with pytest.raises(DumpError, match="was edited after smug wrote it"):
        read_dump(broken)
    broken.write_text(_resealed(broken.read_text(), "smt2"))  # its digest made to fit: the parser finds it
    with pytest.raises(DumpError, match="the smt2 body does not parse"):
        read_dump(broken)


@pytest.mark.parametrize("edit", ["readable line", "json header", "constraints"])
def test_an_edited_dump_is_refused(artefacts, tmp_path, edit):
    """Issue 31.3: the end line's sha256 covers the header's readable lines, its JSON and the rows."""
    text = artefacts["first-layer"]["smt2"].read_text()
    meta = read_dump(artefacts["first-layer"]["smt2"]).meta
    other = "0" * 64
    edited = {"readable line": text.replace(f"input_sha256: {meta['input_sha256']}", f"input_sha256: {other}", 1),
              "json header": text.replace(f'"input_sha256":"{meta["input_sha256"]}"', f'"input_sha256":"{other}"', 1),
              "constraints": text.replace("(assert", "(assert ", 1)}[edit]
    assert edited != text
    path = tmp_path / "edited.smt2"
    path.write_text(edited)
    with pytest.raises(DumpError) as err:
        check(path, artefacts["first-layer"]["result"])
    assert "was edited after smug wrote it" in str(err.value) and "\n" not in str(err.value)


def test_a_result_of_another_input_is_refused(artefacts, tmp_path):
    """Issue 31.3: a result of another digit with the same target and size of grid is not this dump's."""
    from smug.pipeline import ExplainRequest, run
    from smug.pipeline.inputs import load_image

    mine = load_result(artefacts["first-layer"]["result"])
    x = load_image(ExplainRequest.build(None, "mnist-mlp")).x
    other = run(ExplainRequest.build(np.roll(x, 1, axis=-1), "mnist-mlp", timeout=30))
    assert other.target == mine["target"] and other.n_vars == mine["n_vars"] and other.status == "optimal"
    assert other.input_sha256 != mine["input_sha256"]
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other.to_json()))
    with pytest.raises(DumpError, match=r"^the result does not belong to this dump: it answers another input "
                                        r"\(input_sha256 [0-9a-f]{12}\.\.\., the dump's [0-9a-f]{12}\.\.\.\)$"):
        check(artefacts["first-layer"]["smt2"], path)
    older = {k: v for k, v in mine.items() if k != "input_sha256"}  # a result of an older smug: no hash to compare
    path.write_text(json.dumps(older))
    with pytest.raises(DumpError, match="does not say which input it answers"):
        check(artefacts["first-layer"]["smt2"], path)


def test_a_result_of_another_model_file_is_refused(tmp_path):
    """Issue 31.3: two model files of one name (the same stem, grid and class): the result of one is refused
    against the other's dump."""
    import onnx
    from onnx import numpy_helper

    from smug.models.zoo import ZOO
    from smug.pipeline import ExplainRequest, dump, run
    from smug.pipeline.inputs import load_image

    x = load_image(ExplainRequest.build(None, "mnist-mlp")).x
    proto = onnx.load(str(ZOO["mnist-mlp"].onnx_path()))
    paths = []
    for i, shift in enumerate((0.0, 1e-3)):
        init = proto.graph.initializer[-1]  # the last bias: shifted a little, the decision kept
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(shift), init.name))
        folder = tmp_path / str(i)
        folder.mkdir()
        onnx.save(proto, str(folder / "mlp.onnx"))
        paths.append(str(folder / "mlp.onnx"))
    reqs = [ExplainRequest.build(x, p, timeout=30) for p in paths]
    (tmp_path / "0.smt2").write_text(dump(reqs[0]).text)
    other = run(reqs[1])
    (tmp_path / "1.json").write_text(json.dumps(other.to_json()))
    with pytest.raises(DumpError, match="^the result does not belong to this dump: it answers another model file"):
        check(tmp_path / "0.smt2", tmp_path / "1.json")
    mine = run(reqs[0])
    (tmp_path / "0.json").write_text(json.dumps(mine.to_json()))
    assert check(tmp_path / "0.smt2", tmp_path / "0.json").ok


def test_a_foreign_smtlib_file_is_one_clear_error(tmp_path):
    other = tmp_path / "other.smt2"
    other.write_text("(set-logic QF_LRA)\n(declare-const x Real)\n(assert (> x 1.0))\n(check-sat)\n")
    with pytest.raises(DumpError, match="is an SMT-LIB2 file that smug did not write") as e:
        read_dump(other)
    assert "\n" not in str(e.value)


def test_a_result_of_another_problem_is_one_clear_error(artefacts):
    with pytest.raises(DumpError, match="does not belong to this dump: its method is 'smug', the dump's "
                                        "'whole-network'"):
        check(artefacts["whole-network"]["smt2"], artefacts["first-layer"]["result"])
    with pytest.raises(DumpError, match="does not belong to this dump: its model is 'mnist-mlp'"):
        check(artefacts["text"]["smt2"], artefacts["first-layer"]["result"])


def test_cli_commands(artefacts, capsys):
    parser = argparse.ArgumentParser(prog="smug")
    sub = parser.add_subparsers(dest="command", required=True)
    add_commands(sub)
    dump_arguments(sub.add_parser("dump"))
    a = parser.parse_args(["check", str(artefacts["text"]["wcnf"]), str(artefacts["text"]["result"])])
    assert run_command(a) == 0 and capsys.readouterr().out.startswith("ok: ")
    a = parser.parse_args(["inspect", str(artefacts["text"]["smt2"])])
    assert run_command(a) == 0 and json.loads(capsys.readouterr().out)["kind"] == "text"
    a = parser.parse_args(["dump", "--format", "wcnf", "--bound", "3", "--method", "whole-network"])
    assert (a.format, a.bound, a.method) == ("wcnf", 3, "whole-network")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["smt2", "wcnf"])
def test_accepts_the_bundled_photo(tmp_path, fmt):
    """Lite0 on the bundled cat (IG ~45 s on 2 cores, the check itself 1-7 s)."""
    from smug.pipeline import ExplainRequest, dump, run

    req = ExplainRequest.build(None, "efficientnet-lite0", timeout=60)
    path, result = tmp_path / f"cat.{fmt}", tmp_path / "result.json"
    path.write_text(dump(req, format=fmt).text)
    e = run(req)
    result.write_text(json.dumps(e.to_json()))
    report = check(path, result)
    assert report.ok and report.optimum == e.objective, report.message
    assert report.seconds < 30


def test_a_keep_class_answer_passes_the_check_of_its_final_constraints(tmp_path, capsys):
    """Issue 31 item 4, end to end through the CLI: explain --keep-class, dump the constraint set the
    answer names (the returned step's top_k and gamma, not the request's), check."""
    from smug.clients.cli import run_command as cli
    from smug.pipeline import ExplainRequest
    from smug.pipeline.inputs import load_image

    out = tmp_path / "out"
    assert cli(["explain", "--model", "mnist-mlp", "--keep-class", "--timeout", "30", "--quiet",
                "--out", str(out)]) == 0
    result = json.loads((out / "result.json").read_text())
    final = result["encoding"]["keep_class"]["constraints"]
    assert result["keeps_class"] is True and result["status"] == "optimal"
    assert result["config"]["gamma"] == 0.0 and final["gamma"] > 0.0  # the request's set is not the returned one
    assert (result["constraints"]["top_k"], result["constraints"]["gamma"]) == (final["top_k"], final["gamma"])
    subject = load_image(ExplainRequest.build(None, "mnist-mlp"))  # the mask keeps the digit: a real forward pass
    pixels = np.zeros(subject.x.shape[1:], dtype=bool)
    for r, c in result["mask_blocks"]:
        pixels[r * 4:(r + 1) * 4, c * 4:(c + 1) * 4] = True
    assert int(subject.model.logits(np.where(pixels, subject.x, 0.0)[None].astype(np.float32))[0].argmax()) \
        == result["target"]
    capsys.readouterr()
    final_dump, request_dump = tmp_path / "final.smt2", tmp_path / "request.smt2"
    assert cli(["dump", "--model", "mnist-mlp", "--top-k", str(final["top_k"]), "--gamma", str(final["gamma"]),
                "--out", str(final_dump)]) == 0
    assert cli(["dump", "--model", "mnist-mlp", "--out", str(request_dump)]) == 0
    report = check(final_dump, out / "result.json")
    assert report.ok and report.optimum == result["objective"], report.message
    with pytest.raises(DumpError, match="its gamma is"):  # the request's own constraints are not the answer's
        check(request_dump, out / "result.json")
