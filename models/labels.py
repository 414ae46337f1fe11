"""Class names: the ImageNet-1k names that ship with smug, and a user's labels file."""

from __future__ import annotations

import json
from pathlib import Path

from smug.models.errors import InputError

IMAGENET_CLASSES = Path(__file__).parent / "imagenet_classes.tsv"  # index, WordNet id, name per line
IMAGENET_SIZE = 1000


def imagenet_names() -> list[str]:
    """The 1000 ImageNet-1k class names in class-index order (``models/imagenet_classes.tsv``)."""
    rows = IMAGENET_CLASSES.read_text().splitlines()
    return [r.split("\t")[2] for r in rows if r.strip()]


def read_labels(path: str | Path) -> list[str]:
    """Class names from a file: a JSON list of strings, or one name a line (blank lines at the
    end ignored).  Errors name the problem (:class:`InputError`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"labels file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise InputError(f"the labels file {path} is not readable UTF-8 text") from None
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"the labels file is not a valid JSON list: {exc.msg} at character {exc.pos}") from None
        if not all(isinstance(n, str) for n in names):
            raise InputError("the labels file's JSON list must hold strings (one class name each)")
    else:
        names = [line.strip() for line in text.rstrip().splitlines()]
    if not names or not all(names):
        raise InputError("the labels file must name every class (no empty names)")
    return names


def class_names(n_classes: int, labels: list[str] | None = None) -> list[str]:
    """The names of a model's ``n_classes`` classes: ``labels`` (exactly that many), else the
    ImageNet names for a 1000-class model, else the class indices."""
    if labels is not None:
        if len(labels) != n_classes:
            raise InputError(f"the labels file names {len(labels)} classes; the model has {n_classes}")
        return list(labels)
    if n_classes == IMAGENET_SIZE:
        return imagenet_names()
    return [str(i) for i in range(n_classes)]
