"""Class names (issue 26): a labels file (one name a line, or a JSON list), ImageNet's names by
default for any 1000-class model, and the command line's ``--labels``."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from smug.models.errors import InputError
from smug.models.labels import class_names, imagenet_names, read_labels

PREPROCESS = json.dumps({"crop": 64, "resize": 73, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]})


def test_labels_file_one_name_a_line_or_a_json_list(tmp_path):
    lines = tmp_path / "names.txt"
    lines.write_text("cat\ndog house\nbird\n\n")
    assert read_labels(lines) == ["cat", "dog house", "bird"]
    listed = tmp_path / "names.json"
    listed.write_text(json.dumps(["cat", "dog house", "bird"]))
    assert read_labels(listed) == ["cat", "dog house", "bird"]
    assert class_names(3, read_labels(listed)) == ["cat", "dog house", "bird"]


@pytest.mark.parametrize("text,message", [
    ("[\"cat\", ", "not a valid JSON list"),
    ("[1, 2]", "must hold strings"),
    ("cat\n\ndog\n", "no empty names"),
    ("", "no empty names"),
])
def test_bad_labels_files_are_refused_by_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "labels.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_labels(path)
    with pytest.raises(InputError, match="not found"):
        read_labels(tmp_path / "missing.txt")


def test_default_names_are_imagenet_for_1000_classes_else_indices():
    names = class_names(1000)
    assert len(names) == 1000 and names[22] == "bald_eagle" and names == imagenet_names()
    assert class_names(10) == [str(i) for i in range(10)]
    with pytest.raises(InputError, match="names 3 classes; the model has 10"):
        class_names(10, ["a", "b", "c"])


def _explain(*args):
    return subprocess.run([sys.executable, "-m", "smug", "explain", *args], capture_output=True, text=True,
                          timeout=600)


def test_cli_names_a_1000_class_models_classes_and_takes_labels(torchvision_onnx, tmp_path):
    """A torchvision classifier outside the zoo: ImageNet's names by default; --labels renames."""
    from smug.models.runtime import OnnxModel
    from smug.models.zoo import ASSETS

    model = torchvision_onnx("resnet18", "ts17", "1", 64)
    common = [str(ASSETS / "siamese-cat.jpg"), "--model", str(model), "--method", "gradient", "--preprocess",
              PREPROCESS, "--quiet"]
    r = _explain(*common, "--out", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    target = int(shown["target"].split()[0])
    assert shown["target"].split()[1] == imagenet_names()[target]
    assert OnnxModel.load(model).n_classes == 1000

    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps([f"thing {i}" for i in range(1000)]))
    r = _explain(*common, "--labels", str(labels), "--out", str(tmp_path / "b"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["target"].startswith(f"{target} thing {target} (")
    saved = json.loads((tmp_path / "b" / "result.json").read_text())
    assert saved["target_name"] == f"thing {target}"



def test_cli_refuses_a_labels_file_of_another_size_in_one_line(torchvision_onnx, tmp_path, capsys):
    from smug.clients.cli import main
    from smug.models.zoo import ASSETS

    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    with pytest.raises(SystemExit) as stop:
        main(["explain", str(ASSETS / "siamese-cat.jpg"), "--model", str(torchvision_onnx("resnet18", "ts17", "1", 64)),
              "--method", "gradient", "--preprocess", PREPROCESS, "--labels", str(short), "--out",
              str(tmp_path / "c")])
    assert stop.value.code == 2
    assert capsys.readouterr().err == "smug: error: the labels file names 2 classes; the model has 1000\n"
    assert not (tmp_path / "c").exists()
