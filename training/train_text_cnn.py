"""Train the ``text-cnn`` rating model of the zoo on real movie-review snippets.

Data (``--data``): the 10,605 movie-review snippets with mean human ratings in [-4, 4]
of ``vader-snippets/movieReviewSnippets_GroundTruth.txt`` (MIT; they stand in for
paper 003's Beer Reviews, which are not public).  Ratings are rescaled to [0, 1] by
``(r + 4) / 8``.  A fixed permutation (seed 0) gives 80 % train, 10 % validation and
10 % test (:func:`smug.bench.datasets.snippets_split` gives the same split to tests
and benchmarks).

Model (paper 003 Sec. 5 / Carter et al., :func:`smug.bench.nets.text_cnn`): Embedding(V, 100, padding_idx=0) ->
Conv1d(128 kernels, width 3, zero padding 1) -> ReLU -> global max-pool over
positions -> Linear(128, 1) -> sigmoid; dropout on the pooled features during
training only.  Adam, MSE loss, the epoch with the best validation MSE is kept.
The ONNX graph takes float32 ids ``(N, L)`` and holds the embedding lookup:
Cast -> Gather -> Transpose -> Conv -> Relu -> ReduceMax -> Gemm -> Sigmoid.
Writes ``text-cnn.onnx`` and ``text-cnn.json`` (model card, MSEs and tokenizer) into ``--out``.

Run from the checkout (about a minute on one CPU thread):
``python training/train_text_cnn.py --data ../shared/data/vader-snippets --out models/``.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from smug.bench.datasets import SEED, snippets_split
from smug.bench.nets import EMBED, KERNELS, WIDTH, export_onnx, text_cnn
from smug.models.text_cnn import PAD, UNK, Tokenizer, save_metadata

LENGTH = 60
MIN_COUNT = 2


def build_tokenizer(train_texts: list[str], length: int = LENGTH, min_count: int = MIN_COUNT) -> Tokenizer:
    """Vocabulary: training-split words seen at least ``min_count`` times, most frequent first."""
    probe = Tokenizer(vocabulary=(PAD, UNK), length=length)
    counts = Counter(w for t in train_texts for w in probe.words(t))
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return Tokenizer(vocabulary=(PAD, UNK, *words), length=length)


def encode_all(tok: Tokenizer, texts: list[str]) -> np.ndarray:
    return np.stack([tok(t).ids for t in texts]).astype(np.float32)


def train(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, vocab: int, epochs: int,
          batch: int = 32, lr: float = 1e-3):
    """Deterministic training on one CPU thread; returns (model in eval mode, best epoch, history)."""
    import copy

    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    model = text_cnn(vocab)
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True,
                    help="the vader snippets: movieReviewSnippets_GroundTruth.txt or its folder")
    ap.add_argument("--out", type=Path, required=True, help="folder for text-cnn.onnx / .json (e.g. models/)")
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort
    import torch

    onnx_path = args.out / "text-cnn.onnx"
    split = snippets_split(args.data)
    tok = build_tokenizer(split["train"][0])
    args.out.mkdir(parents=True, exist_ok=True)
    x = {k: encode_all(tok, t) for k, (t, _) in split.items()}
    y = {k: v for k, (_, v) in split.items()}
    model, best_epoch, history = train(x["train"], y["train"], x["validation"], y["validation"],
                                       len(tok.vocabulary), args.epochs)
    assert float(model.embedding.weight[0].detach().abs().max()) == 0.0, "the padding embedding must stay zero"
    export_onnx(model, (tok.length,), "ids", "rating", onnx_path)

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(torch.from_numpy(x["test"])).numpy()
    got = sess.run(["rating"], {"ids": x["test"]})[0]
    diff = float(np.abs(got - ref).max())
    assert diff <= 1e-5, f"onnxruntime and torch disagree: max |diff| = {diff}"
    mse = {k: float(np.mean((sess.run(["rating"], {"ids": x[k]})[0][:, 0].astype(np.float64) - y[k]) ** 2))
           for k in ("train", "validation", "test")}
    mean_rating = float(y["train"].mean())
    baseline = {k: float(np.mean((mean_rating - y[k]) ** 2)) for k in ("validation", "test")}
    ops = [n.op_type for n in onnx.load(str(onnx_path)).graph.node]
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
    save_metadata(onnx_path.with_suffix(".json"), tok, meta)
    print(f"wrote {onnx_path} ({onnx_path.stat().st_size / 1e6:.1f} MB) and {onnx_path.with_suffix('.json')}")


if __name__ == "__main__":
    main()
