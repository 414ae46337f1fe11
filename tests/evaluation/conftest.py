"""Fixtures of the evaluation tests: the shipped MNIST demo digit and shifted copies of it as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DIGIT = Path(__file__).resolve().parents[2] / "models" / "assets" / "mnist-digit.png"


def digit_files(folder: Path, shifts: list[tuple[int, int]], stem: str = "digit") -> list[Path]:
    """The demo digit rolled by each (rows, columns) shift, saved as ``<stem><i>.png`` in ``folder``."""
    from PIL import Image

    img = np.asarray(Image.open(DIGIT).convert("L"))
    paths = []
    for i, shift in enumerate(shifts):
        paths.append(folder / f"{stem}{i}.png")
        Image.fromarray(np.roll(img, shift, axis=(0, 1))).save(paths[-1])
    return paths


@pytest.fixture(scope="session")
def make_digits():
    """:func:`digit_files`, for fixtures that need their own set."""
    return digit_files


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The demo digit and a shifted copy, as PNG files."""
    return digit_files(tmp_path_factory.mktemp("digits"), [(0, 0), (2, -3)])
