import json
from pathlib import Path

import numpy as np
import pytest

from smug.models.preprocess import InputError, check_array
from smug.models.runtime import ModelError, OnnxModel
from smug.models.zoo import ZOO, load_model


def test_mnist_mlp_reaches_its_recorded_test_accuracy(mnist, mnist_test_split):
    x, y = mnist_test_split
    acc = float((mnist.logits(x).argmax(1) == y).mean())
    recorded = json.loads((Path(ZOO["mnist-mlp"].onnx_path()).with_suffix(".json")).read_text())["test_accuracy"]
    assert acc == pytest.approx(recorded, abs=1e-9) and acc > 0.85


def test_mnist_cnn_reaches_its_recorded_accuracy_and_stays_small(mnist_test_split):
    x, y = mnist_test_split
    model = load_model("mnist-cnn")[0]
    acc = float((model.logits(x).argmax(1) == y).mean())
    path = Path(ZOO["mnist-cnn"].onnx_path())
    recorded = json.loads(path.with_suffix(".json").read_text())["test_accuracy"]
    assert acc == pytest.approx(recorded, abs=1e-9) and acc > 0.9
    assert path.stat().st_size < 100_000
    ops = [n.op_type for n in model.proto.graph.node]
    assert ops == ["Conv", "BatchNormalization", "Relu", "MaxPool", "Conv", "Relu", "Flatten", "Gemm"]


def test_mnist_demo_digit_is_a_real_test_digit(mnist, mnist_test_split):
    x, _ = ZOO["mnist-mlp"].preprocess.load(ZOO["mnist-mlp"].demo_input)
    np.testing.assert_allclose(x, mnist_test_split[0][0], atol=1 / 255)


@pytest.mark.slow
def test_lite0_export_has_a_dynamic_batch_and_classifies_the_photo(lite0, cat):
    model, entry = lite0
    assert model.input_shape == (3, 224, 224)
    batch = np.stack([cat, np.zeros_like(cat), cat * 0.5])
    together = model.logits(batch)
    alone = np.concatenate([model.logits(b[None]) for b in batch])
    np.testing.assert_allclose(together, alone, atol=1e-4)
    assert together[0].argmax() == 284 and entry.class_names()[284] == "Siamese_cat"


def test_unknown_model_and_bad_files_are_named(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'resnet-9000'"):
        load_model("resnet-9000")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        OnnxModel.load(junk)
    with pytest.raises(ModelError, match="not found"):
        OnnxModel.load(tmp_path / "missing.onnx")


def test_preprocessing_rejects_bad_images(tmp_path):
    from PIL import Image

    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a readable image"):
        ZOO["mnist-mlp"].preprocess.load(text)
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(big)
    with pytest.raises(InputError, match="30x30; this model needs 28x28"):
        ZOO["mnist-mlp"].preprocess.load(big)
    with pytest.raises(InputError, match="NaN"):
        check_array(np.full((1, 28, 28), np.nan), (1, 28, 28))
    with pytest.raises(InputError, match="shape"):
        check_array(np.zeros((28, 28)), (1, 28, 28))
