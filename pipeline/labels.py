"""Class names from a user's labels file on an answer (``smug explain --labels FILE``).

An answer names its classes at the moment it is made (the zoo's names, ImageNet's for any
1000-class model, else the indices: :mod:`smug.models.labels`); a labels file renames the target
and the masked input's prediction afterwards, so that the computed answer does not depend on it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from smug.models.labels import class_names, read_labels
from smug.models.zoo import load_model
from smug.pipeline.explanation import Explanation


def model_labels(model: str, path: str | Path) -> list[str]:
    """The names of ``path`` (:func:`~smug.models.labels.read_labels`), checked to name each of the
    classes of ``model`` (a zoo name or an .onnx path) -- before anything is explained."""
    names = read_labels(path)
    return class_names(load_model(model)[0].n_classes, names)


def relabeled(e: Explanation, names: list[str]) -> Explanation:
    """``e`` with its classes named by ``names`` (the target and the masked input's prediction)."""
    masked = dict(e.masked_prediction)
    if "class" in masked:
        masked["name"] = names[masked["class"]]
    return dataclasses.replace(e, target_name=names[e.target], masked_prediction=masked)
