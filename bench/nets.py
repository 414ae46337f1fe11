"""torch definitions of the zoo's trained models (``training/`` trains them), their ONNX export,
and small random-weight copies of the text CNN for tests and smoke checks."""

from __future__ import annotations

import io
import os
import warnings

EMBED, KERNELS, WIDTH = 100, 128, 3  # the shipped text-cnn


def mnist_mlp():
    """The 784-32-10 ReLU MLP of ``mnist-mlp`` (Flatten -> Linear -> ReLU -> Linear)."""
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


def fit_classifier(make_model, x, y, epochs: int, batch: int, lr: float, seed: int):
    """Build ``make_model()`` and train it deterministically (Adam, cross-entropy, shuffled mini-batches)
    on one CPU thread; returns the model in eval mode (the zoo's MNIST nets)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(batch):
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def text_cnn(vocab: int, dropout: float = 0.5, embed: int = EMBED, kernels: int = KERNELS, width: int = WIDTH):
    """The (untrained) text CNN of ``text-cnn``: Embedding(vocab, embed, padding_idx=0) -> Conv1d(kernels,
    width, zero padding width // 2) -> ReLU -> global max-pool -> dropout -> Linear(kernels, 1) -> sigmoid;
    it takes float32 ids ``(N, L)``.  The smaller sizes serve tests."""
    import torch
    from torch import nn

    class TextCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
            self.conv = nn.Conv1d(embed, kernels, width, padding=width // 2)
            self.drop = nn.Dropout(dropout)
            self.dense = nn.Linear(kernels, 1)

        def forward(self, ids):  # (N, L) float32 ids
            e = self.embedding(ids.long()).transpose(1, 2)
            h = torch.relu(self.conv(e)).amax(dim=2)
            return torch.sigmoid(self.dense(self.drop(h)))

    return TextCNN()


def export_onnx(net, input_shape: tuple[int, ...], input_name: str, output_name: str,
                out: str | os.PathLike | None = None) -> bytes | None:
    """TorchScript ONNX export (opset 17) with a dynamic batch dimension, into the file ``out``
    (through a temporary file beside it) or, without ``out``, returned as bytes."""
    import torch

    target = io.BytesIO() if out is None else f"{os.fspath(out)}.tmp.onnx"
    with warnings.catch_warnings():  # the legacy exporter is chosen on purpose
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, *input_shape),), target, input_names=[input_name],
                          output_names=[output_name], dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
                          opset_version=17, dynamo=False)
    if out is None:
        return target.getvalue()
    os.replace(target, out)
    return None


def random_text_cnn(vocab: int = 12, length: int = 8, seed: int = 0, embed: int = 4, kernels: int = 6,
                    width: int = 3):
    """A random-weight text CNN exported through the same path as the shipped one:
    (torch module in eval mode, OnnxModel)."""
    import onnx
    import torch

    from smug.models.runtime import OnnxModel

    torch.manual_seed(seed)
    net = text_cnn(vocab, embed=embed, kernels=kernels, width=width).eval()
    proto = onnx.load_from_string(export_onnx(net, (length,), "ids", "rating"))
    return net, OnnxModel.from_proto(proto, f"text-cnn-random-{seed}")
