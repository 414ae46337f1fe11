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
