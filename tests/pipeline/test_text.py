import json

import numpy as np
import pytest

from smug.clients.cli import main
from smug.pipeline import explain
from smug.pipeline.request import TEXT_ROWS as METHODS
from smug.encoders.text import WordGrid, masked_ids
from smug.models.preprocess import InputError
from smug.models.runtime import ModelError
from smug.models.text_cnn import ratings, tokenizer_for
from smug.models.zoo import load_model

TEXT = "A gorgeous, funny and deeply moving film, let down by a dull and clumsy ending."


def explain_text(text, **kw):
    return explain(None, kw.pop("model", "text-cnn"), text=text, **kw)


@pytest.fixture(scope="module")
def explained():
    return explain_text(TEXT, timeout=30)


def test_explanation_is_certified_and_re_checked_by_a_forward_pass(explained):
    e = explained
    model, _ = load_model("text-cnn")
    tok = tokenizer_for("text-cnn")
    tt = tok(TEXT)
    assert e.text.words == list(tt.words) and e.status == "optimal" and e.certificate["valid"]
    assert e.text.rating == pytest.approx(float(ratings(model, tt.ids[None])[0]), abs=1e-6)
    assert [r.method for r in e.text.rows] == list(METHODS)
    assert sum(e.word_mask) == e.objective == e.lower_bound
    grid = WordGrid.of_ids(tt.ids, 100)
    assert e.text.masked_rating == pytest.approx(float(ratings(model, masked_ids(tt.ids, grid, np.array(e.word_mask))[None])[0]))
    smug = e.text.row("smug")
    assert all((s != 0) <= m for s, m in zip(smug.scores, smug.selected))  # scores only on kept words
    assert smug.measures["sparsity"] == pytest.approx(e.objective / len(e.text.words))
    for r in e.text.rows:
        assert len(r.scores) == len(e.text.words) and set(r.measures) == {"sparsity", "sufficiency", "comprehensiveness"}
    sis = e.text.row("text_sis")
    assert e.text.direction == "positive"  # s = rating: the SIS keeps s >= its threshold
    assert sis.measures["sufficiency"] <= e.text.rating - sis.info["threshold"] + 1e-6


def test_json_and_html_have_one_row_per_method(explained, tmp_path):
    e = explained
    data = json.loads(json.dumps(e.to_json()))
    assert data["mask_words"] == e.selected_words("smug") and data["n_words"] == 15
    from smug.rendering.text_html import render_page

    page = render_page([e])
    assert page.count('<td class="method">') == len(METHODS)
    assert "rgba(0, 160, 0" in page and "rgba(210, 0, 0" in page  # green and red words
    assert page.count('class="w sel"') == sum(sum(r.selected) for r in e.text.rows if r.selected)
    files = e.save(tmp_path)
    assert {f.name for f in files} == {"result.json", "explanation.html"}
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "optimal"


def test_html_escapes_words():
    from smug.rendering.text_html import render_row, word_color

    assert "&lt;unk&gt;" in render_row(["<unk>"], [0.5], [True])
    assert word_color(0.0, 1.0) == "transparent" and word_color(-1.0, 1.0).startswith("rgba(210")


def test_bad_text_inputs():
    with pytest.raises(ValueError, match="empty"):
        explain_text("")
    with pytest.raises(InputError, match="none of the 2 words"):
        explain_text("zzqxv qqzzk")
    with pytest.raises(InputError, match="not valid UTF-8"):
        explain_text(b"good \xff film")
    with pytest.raises(ModelError, match="image model"):
        explain_text("a good film", model="mnist-mlp")
    with pytest.raises(ValueError, match="unknown text rows"):
        explain_text("a good film", rows=("gradcam",))


def test_long_text_is_truncated_and_says_so():
    e = explain_text("a good film " * 30, rows=("smug",), timeout=30)
    assert e.text.truncated and len(e.text.words) == 60 and "90 words; only the first 60" in e.warnings[0]
    assert e.status == "optimal"


def test_cli_text_and_text_file(tmp_path, capsys):
    out = tmp_path / "one"
    with pytest.raises(SystemExit) as exc:
        main(["explain", "--model", "text-cnn", "--text", "a wonderful, moving masterpiece", "--out", str(out)])
    assert exc.value.code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["certificate_valid"] and (out / "explanation.html").is_file()
    result = json.loads((out / "result.json").read_text())
    assert result["config"]["top_k"] == 100  # the paper's text default unless --top-k is given
    lines = tmp_path / "lines.txt"
    lines.write_text("a wonderful film\n\nthe dullest mess\n", encoding="utf-8")
    out2 = tmp_path / "two"
    with pytest.raises(SystemExit) as exc:
        main(["explain", "--model", "text-cnn", "--text-file", str(lines), "--top-k", "50", "--out", str(out2)])
    assert exc.value.code == 0
    many = json.loads((out2 / "result.json").read_text())
    assert [m["text"]["direction"] for m in many] == ["positive", "negative"] and many[0]["config"]["top_k"] == 50
    assert (out2 / "explanation.html").read_text().count('<table class="smug-text">') == 2
    printed = capsys.readouterr().out.strip().splitlines()  # several texts: JSON Lines, one summary each
    assert len(printed) == 2 and [json.loads(p)["status"] for p in printed] == ["optimal", "optimal"]
    assert all(list(json.loads(p)) == list(summary) for p in printed)  # the same shape as a single text's


@pytest.mark.parametrize("args, message", [
    (["--text", "   "], "the text is empty"),
    (["--text", "good \udcff film"], "not valid UTF-8"),
    (["--text-file", "/nonexistent/lines.txt"], "input file not found"),
    (["--text", "a", "--text-file", "x"], "not both"),
])
def test_cli_bad_text_is_one_error_line_and_nothing_written(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["explain", "--model", "text-cnn", *args, "--out", str(out)])
    assert exc.value.code == 2 and not out.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("smug: error:") and message in err[0]


def test_cli_file_with_bad_bytes_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good film\nbad \xff film\n")
    with pytest.raises(SystemExit) as exc:
        main(["explain", "--model", "text-cnn", "--text-file", str(bad), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2
    assert "line 2 is not valid UTF-8 (byte 0xff at offset 4)" in capsys.readouterr().err


def test_repr_and_notebook_display(explained):
    e = explained
    assert repr(e).startswith("Explanation(smug on text-cnn: optimal") and len(repr(e)) < 300
    page = e._repr_html_()
    assert "<table" in page and "keeps the decision" in page and 'class="smug-text"' in page
