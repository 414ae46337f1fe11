"""The whole-network method on the zoo's MNIST CNN through the pipeline (the path every front end takes)."""

import numpy as np
import pytest

from smug.models.zoo import load_model
from smug.pipeline import explain
from smug.pipeline.models import model_facts


def test_mnist_cnn_whole_network_answer_is_optimal_and_kept_by_onnxruntime(mnist_test_split):
    x = mnist_test_split[0][3]
    e = explain(x, "mnist-cnn", method="whole-network", window=4, timeout=30)
    assert e.status == "optimal" and e.objective == e.lower_bound and e.certificate["valid"]
    model = load_model("mnist-cnn")[0]
    pixels = e.image.pixel_mask.astype(bool)
    masked = np.where(pixels, x[0], 0.0).astype(np.float32)[None, None]
    assert int(model.logits(masked)[0].argmax()) == e.target  # onnxruntime agrees
    per_layer = e.encoding["unstable_per_layer"]
    assert sum(per_layer["crown"]) == e.encoding["unstable_relus"] <= e.encoding["unstable_relus_interval"]
    assert e.encoding["fallbacks"] == []


def test_mnist_cnn_is_offered_for_whole_network_masks():
    facts = model_facts("mnist-cnn", zoo=True)
    assert facts.whole_network and facts.n_classes == 10


def test_mnist_cnn_whole_network_over_grpc(tmp_path, mnist_test_split):
    """A zoo name reaches the pipeline from a real gRPC server on loopback."""
    pytest.importorskip("grpc")
    from smug.clients import Client
    from smug.server.config import ServerConfig
    from smug.server.main import start

    x = mnist_test_split[0][3]
    srv = start(ServerConfig(host="127.0.0.1", port=0, workers=1, store=tmp_path, inspect_zoo=False, grace=10.0))
    try:
        with Client(f"127.0.0.1:{srv.port}") as c:
            e = c.explain(x, "mnist-cnn", method="whole-network", window=4, timeout=30)
    finally:
        srv.stop(grace=2)
    assert e.status == "optimal" and e.objective == e.lower_bound and e.certificate["valid"]
    assert e.model == "mnist-cnn" and e.encoding["unstable_relus"] < e.encoding["unstable_relus_interval"]


@pytest.mark.parametrize("method", ["whole-network", "robust"])
def test_a_network_beyond_the_budget_is_refused_before_any_forward_pass(torchvision_onnx, tmp_path, method,
                                                                        monkeypatch):
    """Issue 26: the budget check runs right after the model is loaded (the input is neither read
    nor run), so a ResNet-18 is refused in well under the 2 s the issue asks for, by name and size."""
    from smug.encoders.first_layer import UnsupportedModel
    from smug.models.runtime import OnnxModel
    from smug.pipeline import ExplainRequest, run

    path = torchvision_onnx("resnet18", "ts17", "1", 64)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((3, 64, 64), np.float32))
    monkeypatch.setattr(OnnxModel, "logits", lambda *a, **k: pytest.fail("the model ran before the refusal"))
    req = ExplainRequest.build(str(x), str(path), method=method)
    with pytest.raises(UnsupportedModel, match="beyond the whole-network encoding's budget: [0-9,]+ ReLU units"):
        run(req)
