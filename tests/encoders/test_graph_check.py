"""The graph check (issue 31 item 2): rigorous margins of the ONNX graph's own semantics enclose a
plain 60-digit evaluation of the graph (mpmath, loops), and the lowered network's exact margins
(what the certificate checks) lie within them."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from onnx import numpy_helper

from smug.encoders.graph_check import graph_margins
from smug.solver.certificate import exact_logits

from _tiny_cnn import tiny_cnn, tiny_cnn_problem

mpmath.mp.dps = 60


def _reference_logits(model, x: np.ndarray) -> list:
    """The tiny CNN of ``_tiny_cnn`` evaluated node by node in 60 digits with plain loops."""
    w = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.proto.graph.initializer}
    mp = lambda v: mpmath.mpf(float(v))
    img = x[0]
    C, size = w["W"].shape[0], img.shape[0]
    n = size - 2
    conv = [[[sum(mp(w["W"][c, 0, i, j]) * mp(img[r + i, s + j]) for i in range(3) for j in range(3)) + mp(w["b"][c])
              for s in range(n)] for r in range(n)] for c in range(C)]
    bn = [[[mp(w["s"][c]) * (v - mp(w["m"][c])) / mpmath.sqrt(mp(w["v"][c]) + mpmath.mpf(1e-5)) + mp(w["t"][c])
            for v in row] for row in conv[c]] for c in range(C)]
    act = [[[max(v, 0) for v in row] for row in bn[c]] for c in range(C)]
    m = n // 2
    pool = [[[max(act[c][2 * r + i][2 * s + j] for i in range(2) for j in range(2)) for s in range(m)]
             for r in range(m)] for c in range(C)]
    if "V" in w:
        pad = lambda c, r, s: pool[c][r][s] if 0 <= r < m and 0 <= s < m else 0
        pool = [[[max(sum(mp(w["V"][d, c, i, j]) * pad(c, r + i - 1, s + j - 1)
                          for c in range(C) for i in range(3) for j in range(3)), 0) for s in range(m)]
                 for r in range(m)] for d in range(C)]
    flat = [v for c in range(C) for row in pool[c] for v in row]
    return [sum(mp(g) * v for g, v in zip(w["G"][k], flat)) + mp(w["g"][k]) for k in range(w["G"].shape[0])]


@pytest.mark.parametrize("seed", range(4))
def test_graph_margins_enclose_the_graph_and_the_lowered_network(seed):
    second = seed % 2 == 1
    model = tiny_cnn(seed, second_conv=second)
    p = tiny_cnn_problem(seed, window=2, second_conv=second)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        mask = rng.random(p.n_vars) < 0.6
        v = p.masked_input(mask)
        x = v.reshape(model.input_shape)
        g = graph_margins(model, x, p.target)
        ref = _reference_logits(model, x)
        lowered = exact_logits(p, v)
        others = [j for j in range(len(ref)) if j != p.target]
        for i, j in enumerate(others):
            assert g.lower[i] <= ref[p.target] - ref[j] <= g.upper[i]
            assert g.lower[i] <= lowered[p.target] - lowered[j] <= g.upper[i]
        assert 0 < g.radius < 1e-9


def test_a_pad_value_given_as_an_attribute_is_refused():
    """Opset <= 10 holds Pad's value in an attribute: a non-zero one is not the zero padding the
    lowering and the graph check read (the review's case 5)."""
    from onnx import TensorProto, helper

    from smug.encoders.first_layer import UnsupportedModel
    from smug.encoders.network import encode_network
    from smug.models.runtime import OnnxModel

    nodes = [helper.make_node("Pad", ["x"], ["p"], pads=[0, 0, 1, 1, 0, 0, 1, 1], value=5.0, mode="constant"),
             helper.make_node("Flatten", ["p"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "W", "C"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(np.ones((2, 16), np.float32), "W"), numpy_helper.from_array(np.zeros(2, np.float32), "C")]
    graph = helper.make_graph(nodes, "pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    proto.ir_version = 7
    model = OnnxModel.from_proto(proto, "pad-value")
    x = np.ones((1, 2, 2), np.float32)
    with pytest.raises(UnsupportedModel, match="zero padding"):
        encode_network(model, x, window=1)
    with pytest.raises(UnsupportedModel, match="zero padding"):
        graph_margins(model, x, 0)
