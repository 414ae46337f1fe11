import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from smug.models.preprocess import InputError
from smug.models.text_cnn import PAD_ID, UNK, UNK_ID, Tokenizer, load_tokenizer, ratings, tokenizer_for
from smug.bench.datasets import SNIPPETS as DATA
from smug.models.zoo import ZOO, load_model


def _snippets():
    if not DATA.is_file():
        pytest.skip(f"real data not found: {DATA} (the shared/ folder beside the project)")
    from smug.bench.datasets import snippets_split as load_split

    return load_split()


@pytest.fixture(scope="module")
def text_cnn():
    model, entry = load_model("text-cnn")
    return model, tokenizer_for("text-cnn"), entry


SMALL = Tokenizer(vocabulary=("<pad>", "<unk>", "good", "film", "isn't", "bad", "2"), length=5)


def test_tokenizer_round_trip_of_known_words():
    tt = SMALL("Good FILM, isn't... 2 bad!")
    assert tt.words == ("good", "film", "isn't", "2", "bad")
    assert tt.ids.tolist() == [2, 3, 4, 6, 5] and tt.unknown == () and not tt.truncated
    assert SMALL.decode(tt.ids) == list(tt.words)
    again = SMALL(" ".join(SMALL.decode(tt.ids)))
    np.testing.assert_array_equal(again.ids, tt.ids)
    assert tt.model_input.dtype == np.float32


def test_tokenizer_unknown_words_padding_and_truncation():
    tt = SMALL("good weird film")
    assert tt.ids.tolist() == [2, UNK_ID, 3, PAD_ID, PAD_ID]
    assert tt.unknown == (1,) and SMALL.decode(tt.ids) == ["good", UNK, "film"]
    assert "not in the model's vocabulary" in tt.warnings()[0]
    long = SMALL("good film " * 4)
    assert long.n_words == 5 and long.n_total == 8 and long.truncated
    assert "8 words; only the first 5" in long.warnings()[0]


def test_tokenizer_json_round_trip_is_exact():
    again = Tokenizer.from_json(json.loads(json.dumps(SMALL.to_json())))
    assert again == SMALL
    text = "bad film, isn't it"
    np.testing.assert_array_equal(again(text).ids, SMALL(text).ids)
    with pytest.raises(ValueError, match="missing or bad field"):
        Tokenizer.from_json({"length": 3})
    with pytest.raises(ValueError, match="must start with"):
        Tokenizer(vocabulary=("a", "b"), length=3)


def test_bad_text_gets_clear_errors():
    with pytest.raises(InputError, match="empty"):
        SMALL("  ... !! ")
    with pytest.raises(InputError, match="not valid UTF-8: byte 0xff at offset 5"):
        SMALL(b"good \xff film")
    assert SMALL("good film".encode()).words == ("good", "film")
    with pytest.raises(InputError, match="not valid UTF-8"):
        SMALL("good \udcff film")  # how Python carries undecodable argv bytes
    with pytest.raises(InputError, match="must be a string"):
        SMALL(3)


def test_zoo_entry_is_a_text_model_with_its_tokenizer(text_cnn):
    model, tok, entry = text_cnn
    assert entry.kind == "text" and model.input_shape == (tok.length,)
    assert ZOO["mnist-mlp"].kind == "image"
    assert load_tokenizer(Path(entry.onnx_path()).with_suffix(".json")) == tok
    assert Path(entry.onnx_path()).stat().st_size < 8e6
    with pytest.raises(InputError, match=r"text model: give it a text \(smug explain --model text-cnn --text "
                                         r"'\.\.\.', or smug\.explain\(model='text-cnn', text='\.\.\.'\)\)"):
        entry.preprocess.load(entry.demo_input)  # names entry points that exist (issue 27)
    from smug.encoders.smug import SmugConfig
    from smug.pipeline import ExplainRequest
    from smug.pipeline.inputs import load_image
    from smug.pipeline.request import DemoInput

    image_request = ExplainRequest("text-cnn", DemoInput(), "smug", SmugConfig(), "image")
    with pytest.raises(InputError, match="is a text model"):
        load_image(image_request)


def _reference_forward(proto: onnx.ModelProto, ids: np.ndarray) -> np.ndarray:
    """Plain numpy: embedding -> conv1d (zero padding) -> relu -> max -> dense -> sigmoid."""
    w = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in proto.graph.initializer}
    emb = next(v for v in w.values() if v.ndim == 2 and v.shape[1] == 100)
    conv_w = next(v for v in w.values() if v.ndim == 3)
    conv_b = next(v for k, v in w.items() if v.shape == (conv_w.shape[0],) and "conv" in k)
    dense_w = next(v for v in w.values() if v.shape == (1, conv_w.shape[0]))
    dense_b = next(v for k, v in w.items() if v.shape == (1,) and "dense" in k)
    out = []
    for row in ids.astype(np.int64):
        e = np.pad(emb[row], ((1, 1), (0, 0)))  # (L + 2, E)
        z = np.stack([np.einsum("kew,we->k", conv_w, e[p : p + 3]) for p in range(len(row))], 1) + conv_b[:, None]
        h = np.maximum(z, 0).max(axis=1)
        out.append(1 / (1 + np.exp(-(dense_w @ h + dense_b))))
    return np.array(out)


def test_shipped_onnx_equals_a_plain_forward_and_pads_with_zero(text_cnn):
    model, tok, _ = text_cnn
    texts = ["a gorgeous, funny film", "dull and clumsy", "zzqx the movie " * 30]
    ids = np.stack([tok(t).ids for t in texts])
    np.testing.assert_allclose(ratings(model, ids), _reference_forward(model.proto, ids)[:, 0], atol=1e-5)
    from smug.encoders.text import find_text_layers

    assert not find_text_layers(model).embedding[PAD_ID].any()


def test_shipped_model_reaches_its_recorded_mse_and_beats_the_mean(text_cnn):
    split = _snippets()
    model, tok, entry = text_cnn
    meta = json.loads(Path(entry.onnx_path()).with_suffix(".json").read_text())
    for part in ("validation", "test"):
        texts, y = split[part]
        mse = float(np.mean((ratings(model, np.stack([tok(t).ids for t in texts])) - y) ** 2))
        assert mse == pytest.approx(meta["mse"][part], abs=1e-6)
        baseline = float(np.mean((split["train"][1].mean() - y) ** 2))
        assert baseline == pytest.approx(meta["mean_rating_baseline_mse"][part], abs=1e-9)
        assert mse < 0.75 * baseline


def test_vocabulary_comes_from_the_training_split_only(text_cnn):
    split = _snippets()
    _, tok, _ = text_cnn
    counts = Counter(w for t in split["train"][0] for w in tok.words(t))
    vocab = tok.vocabulary[2:]
    assert all(counts[w] >= 2 for w in vocab)
    assert len(vocab) == sum(1 for c in counts.values() if c >= 2)
