"""Tensors and parameters between protobuf and the library (no server needed)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("grpc")

from smug.proto import load  # noqa: E402
from smug.server.convert import explain_kwargs, from_tensor, model_input, to_tensor  # noqa: E402
from smug.server.errors import ServiceError  # noqa: E402
from smug.server.registry import ModelRecord  # noqa: E402

pb, _ = load()
MNIST = ModelRecord(id="x", aliases=("m",), input_shape=(1, 28, 28), n_classes=10, description="", zoo=True,
                    size_bytes=1, whole_network=True, source="mnist-mlp")


@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8", "bool"])
def test_tensor_round_trip_is_exact(rng, dtype):
    a = (rng.normal(size=(2, 3, 5)) * 50).astype(dtype)
    t = to_tensor(pb, a)
    assert list(t.shape) == [2, 3, 5] and t.dtype == dtype and len(t.data) == a.nbytes
    assert t.data == a.astype(a.dtype.newbyteorder("<")).tobytes()  # raw little-endian, C order
    b = from_tensor(pb.Tensor.FromString(t.SerializeToString()))
    assert b.dtype == a.dtype and np.array_equal(a, b)


def test_model_input_accepts_a_batch_of_one_and_checks_values(rng):
    x = rng.random((1, 1, 28, 28)).astype(np.float64)
    got = model_input(to_tensor(pb, x), MNIST.input_shape)
    assert got.shape == (1, 28, 28) and got.dtype == np.float32 and np.allclose(got, x[0])
    for bad, words in [(np.zeros((2, 1, 28, 28), np.float32), "shape"), (np.full((1, 28, 28), np.inf), "NaN"),
                       (np.zeros((1, 28, 28), np.int64), "dtype")]:
        with pytest.raises(ServiceError, match=words) as err:
            model_input(to_tensor(pb, bad), MNIST.input_shape)
        assert err.value.code == "INVALID_ARGUMENT"


def test_unset_parameters_keep_the_library_defaults():
    method, kw = explain_kwargs(pb, pb.ExplainParams(), MNIST, 600)
    assert method == "first-layer" and kw == {}
    p = pb.ExplainParams(method=pb.WHOLE_NETWORK, window=2, delta=0.5, backend="enum", timeout=3, target=4)
    assert explain_kwargs(pb, p, MNIST, 600) == ("whole-network", dict(window=2, delta=0.5, backend="enum",
                                                                        timeout=3.0, target=4))
    p = pb.ExplainParams(top_k=7, gamma=0.25, form="affine", ig_steps=16, baseline=-0.5)
    assert explain_kwargs(pb, p, MNIST, 600)[1] == dict(top_k=7, gamma=0.25, form="affine", ig_steps=16,
                                                        baseline=-0.5)
    with pytest.raises(ServiceError, match="gamma"):  # zero is a set value (proto3 optional), 1.0 out of range
        explain_kwargs(pb, pb.ExplainParams(gamma=1.0), MNIST, 600)
