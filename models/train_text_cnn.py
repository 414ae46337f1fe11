"""Train the ``text-cnn`` rating model of the zoo on real movie-review snippets.

Data: the 10,605 movie-review snippets with mean human ratings in [-4, 4] of
``../shared/data/vader-snippets/movieReviewSnippets_GroundTruth.txt`` (MIT; they
stand in for paper 003's Beer Reviews, which are not public).  Ratings are
rescaled to [0, 1] by ``(r + 4) / 8``.  A fixed permutation (seed 0) gives 80 %
train, 10 % validation and 10 % test (``load_split`` gives the same split to
tests and benchmarks).

Model (paper 003 Sec. 5 / Carter et al.): Embedding(V, 100, padding_idx=0) ->
Conv1d(128 kernels, width 3, zero padding 1) -> ReLU -> global max-pool over
positions -> Linear(128, 1) -> sigmoid; dropout on the pooled features during
training only.  Adam, MSE loss, the epoch with the best validation MSE is kept.
The ONNX graph takes float32 ids ``(N, L)`` and holds the embedding lookup:
Cast -> Gather -> Transpose -> Conv -> Relu -> ReduceMax -> Gemm -> Sigmoid.
Writes ``text-cnn.onnx`` and ``text-cnn.json`` (model card, MSEs and tokenizer).

Run: ``python -m smug.models.train_text_cnn`` (about a minute on one CPU thread).
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from smug.models.text_cnn import PAD, UNK, Tokenizer, save_metadata

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "vader-snippets" / "movieReviewSnippets_GroundTruth.txt"
SEED = 0
LENGTH = 60
MIN_COUNT = 2
EMBED, KERNELS, WIDTH = 100, 128, 3


def read_snippets(path: Path = DATA) -> tuple[list[str], np.ndarray]:
    """(texts, ratings in [0, 1]) in file order."""
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


def load_split(path: Path = DATA) -> dict[str, tuple[list[str], np.ndarray]]:
    """{'train', 'validation', 'test'}: (texts, ratings in [0, 1]), fixed seed-0 split 80/10/10."""
    texts, y = read_snippets(path)
    perm = np.random.default_rng(SEED).permutation(len(texts))
    n_val = n_test = len(texts) // 10
    parts = {"test": perm[:n_test], "validation": perm[n_test : n_test + n_val], "train": perm[n_test + n_val :]}
    return {k: ([texts[i] for i in idx], y[idx]) for k, idx in parts.items()}


def build_tokenizer(train_texts: list[str], length: int = LENGTH, min_count: int = MIN_COUNT) -> Tokenizer:
    """Vocabulary: training-split words seen at least ``min_count`` times, most frequent first."""
    probe = Tokenizer(vocabulary=(PAD, UNK), length=length)
    counts = Counter(w for t in train_texts for w in probe.words(t))
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return Tokenizer(vocabulary=(PAD, UNK, *words), length=length)


def encode_all(tok: Tokenizer, texts: list[str]) -> np.ndarray:
    return np.stack([tok(t).ids for t in texts]).astype(np.float32)


def make_model(vocab: int, dropout: float = 0.5, embed: int = EMBED, kernels: int = KERNELS, width: int = WIDTH):
    """The (untrained) text CNN; the smaller sizes serve tests."""
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


def train(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, vocab: int, epochs: int,
          batch: int = 32, lr: float = 1e-3):
    """Deterministic training on one CPU thread; returns (model in eval mode, best epoch, history)."""
    import copy

    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    model = make_model(vocab)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))[:, None]
    gen = torch.Generator().manual_seed(SEED)
    best, best_state, best_epoch, history = np.inf, None, 0, []
    for epoch in range(1, epochs + 1):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(batch):
            opt.zero_grad()
            torch.mean((model(xt[idx]) - yt[idx]) ** 2).backward()
            opt.step()
        mse = mse_of(model.eval(), xv, yv)
        history.append(round(mse, 5))
        print(f"epoch {epoch}: validation MSE {mse:.4f}", flush=True)
        if mse < best:
            best, best_state, best_epoch = mse, copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    return model.eval(), best_epoch, history


def mse_of(model, x: np.ndarray, y: np.ndarray) -> float:
    import torch

    with torch.no_grad():
        p = model(torch.from_numpy(x))[:, 0].double().numpy()
    return float(np.mean((p - y) ** 2))


def export(model, out: Path, length: int) -> None:
    """TorchScript ONNX export (opset 17), dynamic batch, float32 ids in."""
    import torch

    tmp = out.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(1, length),), str(tmp), input_names=["ids"], output_names=["rating"],
            dynamic_axes={"ids": {0: "batch"}, "rating": {0: "batch"}}, opset_version=17, dynamo=False,
        )
    tmp.replace(out)


def random_model(vocab: int = 12, length: int = 8, seed: int = 0, embed: int = 4, kernels: int = 6, width: int = 3):
    """A random-weight model of the same architecture, exported through the same path:
    (torch module in eval mode, OnnxModel).  For tests and smoke checks."""
    import io

    import onnx
    import torch

    from smug.models.runtime import OnnxModel

    torch.manual_seed(seed)
    net = make_model(vocab, embed=embed, kernels=kernels, width=width).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, length),), buf, input_names=["ids"], output_names=["rating"],
                          dynamic_axes={"ids": {0: "batch"}, "rating": {0: "batch"}}, opset_version=17, dynamo=False)
    return net, OnnxModel.from_proto(onnx.load_from_string(buf.getvalue()), f"text-cnn-random-{seed}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "text-cnn.onnx", help="ONNX path (the .json goes beside it)")
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort
    import torch

    split = load_split()
    tok = build_tokenizer(split["train"][0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    x = {k: encode_all(tok, t) for k, (t, _) in split.items()}
    y = {k: v for k, (_, v) in split.items()}
    model, best_epoch, history = train(x["train"], y["train"], x["validation"], y["validation"],
                                       len(tok.vocabulary), args.epochs)
    assert float(model.embedding.weight[0].detach().abs().max()) == 0.0, "the padding embedding must stay zero"
    export(model, args.out, tok.length)

    sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(torch.from_numpy(x["test"])).numpy()
    got = sess.run(["rating"], {"ids": x["test"]})[0]
    diff = float(np.abs(got - ref).max())
    assert diff <= 1e-5, f"onnxruntime and torch disagree: max |diff| = {diff}"
    mse = {k: float(np.mean((sess.run(["rating"], {"ids": x[k]})[0][:, 0].astype(np.float64) - y[k]) ** 2))
           for k in ("train", "validation", "test")}
    mean_rating = float(y["train"].mean())
    baseline = {k: float(np.mean((mean_rating - y[k]) ** 2)) for k in ("validation", "test")}
    ops = [n.op_type for n in onnx.load(str(args.out)).graph.node]
    print(f"MSE {mse}, mean-rating baseline {baseline}, max |ort - torch| {diff:.1e}, ops {ops}")
    meta = {
        "name": "text-cnn",
        "kind": "text",
        "architecture": f"Embedding({len(tok.vocabulary)}, {EMBED}, padding_idx=0) -> Conv1d({KERNELS}, width {WIDTH}, "
                        "padding 1) -> ReLU -> global max-pool -> Linear(128, 1) -> sigmoid",
        "data": "vader-snippets movieReviewSnippets_GroundTruth.txt (10,605 snippets, MIT), rating (r + 4) / 8, "
                "permutation seed 0: 10% test, 10% validation, 80% train",
        "sizes": {k: len(v) for k, v in y.items()},
        "input": f"(N, {tok.length}) float32 token ids (cast to int64 inside), padded with 0",
        "output": "(N, 1) rating in [0, 1]",
        "min_count": MIN_COUNT,
        "epochs": args.epochs,
        "best_epoch": best_epoch,
        "validation_history": history,
        "seed": SEED,
        "mse": mse,
        "mean_rating_baseline_mse": baseline,
        "onnx_torch_max_diff": diff,
    }
    save_metadata(args.out.with_suffix(".json"), tok, meta)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
