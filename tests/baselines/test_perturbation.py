"""Forward-only baselines (issue 5) against plain references: naive loops, hand counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import softmax as scipy_softmax

from smug.baselines.attribution import METHODS, Attribution
from smug.baselines.perturbation import (
    PERTURBATION_METHODS,
    center_box,
    centerbox,
    maxbox,
    occlusion,
    render_rise_masks,
    rise,
    rise_masks,
    sfl,
)
from smug.baselines.sfl import SFLCounts, mutant_masks, sfl_counts, sfl_measures
from smug.baselines.stopping import stopping_criterion


def softmax(z):
    return scipy_softmax(np.asarray(z, dtype=np.float64))


def predict(model, x) -> int:
    """A fresh single-input forward pass."""
    return int(model.logits(np.asarray(x, np.float32)[None], batch_size=1)[0].argmax())


@pytest.fixture(scope="module")
def digits(mnist_test_split):
    x_test, _ = mnist_test_split
    return x_test[:3]


# ---- occlusion ---------------------------------------------------------------------
def naive_occlusion(model, x, target, patch, stride):
    """One forward pass per patch position, accumulated per pixel."""
    _, h, w = x.shape

    def starts(n):
        s = list(range(0, n - patch + 1, stride))
        return s if s[-1] == n - patch else s + [n - patch]

    p0 = softmax(model.logits(x[None])[0])[target]
    total, count = np.zeros((h, w)), np.zeros((h, w))
    for r in starts(h):
        for c in starts(w):
            xo = x.copy()
            xo[:, r : r + patch, c : c + patch] = 0.0
            p = softmax(model.logits(xo[None])[0])[target]
            total[r : r + patch, c : c + patch] += p0 - p
            count[r : r + patch, c : c + patch] += 1
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


@pytest.mark.parametrize("patch,stride", [(3, 2), (4, 3), (2, 5), (9, 1)])
def test_occlusion_equals_a_naive_loop(tiny_conv, rng, patch, stride):
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    for target in (None, 2):
        att = occlusion(model, x, target, patch=patch, stride=stride, batch=5)
        expected = naive_occlusion(model, x, att.target, patch, stride)
        assert att.map.shape == (9, 9)
        np.testing.assert_allclose(att.map, expected, rtol=1e-6, atol=1e-7)
    assert att.target == 2


# ---- SFL measures: a hand-computed table -------------------------------------------
#            a_ep a_ef a_np a_nf   ochiai        tarantula  zoltar(k=1000)  wong2
TABLE = [
    ((0, 4, 6, 0), 1.0, 1.0, 1.0, 4),
    ((3, 2, 3, 2), 1 / np.sqrt(5), 0.5, 2 / 3007, -1),  # zoltar: 2 / (2+2+3 + 1000*2*3/2)
    ((5, 0, 1, 4), 0.0, 0.0, 0.0, -5),
    ((2, 0, 0, 0), 0.0, 0.0, 0.0, -2),  # no failing test at all: 0/0 scores 0
    ((1, 3, 4, 1), 0.75, 15 / 19, 9 / 1015, 2),  # tarantula (3/4)/(3/4+1/5); zoltar 3/(5+1000/3)
]


def test_sfl_measures_on_hand_computed_counts():
    counts = np.array([row[0] for row in TABLE], dtype=float)
    expected = {name: np.array([row[i + 1] for row in TABLE], dtype=float)
                for i, name in enumerate(["ochiai", "tarantula", "zoltar", "wong2"])}
    as_tuple = SFLCounts(*counts.T)
    as_dict = {"ep": counts[:, 0], "ef": counts[:, 1], "np": counts[:, 2], "nf": counts[:, 3]}
    for form in (counts, as_tuple, as_dict):
        got = sfl_measures(form)
        assert set(got) == set(expected)
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(sfl_measures(counts, zoltar_k=10000)["zoltar"][4], 9 / 10015, rtol=1e-12)


def test_sfl_counts_on_a_hand_table():
    executed = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 0], [1, 0, 0]], dtype=bool)  # 4 tests x 3 elements
    failing = np.array([True, False, True, False])
    c = sfl_counts(executed, failing)
    np.testing.assert_array_equal(c.a_ep, [2, 1, 0])
    np.testing.assert_array_equal(c.a_ef, [1, 1, 1])
    np.testing.assert_array_equal(c.a_np, [0, 1, 2])
    np.testing.assert_array_equal(c.a_nf, [1, 1, 1])


def test_sfl_map_on_mnist(mnist, digits):
    x = digits[0]
    a = sfl(mnist, x, n_mutants=300, seed=1)
    c = a.params["counts"]
    assert a.map.shape == (28, 28) and np.all(np.isfinite(a.map))
    np.testing.assert_array_equal(c.a_ep + c.a_ef + c.a_np + c.a_nf, 300)
    assert c.a_ef.sum() + c.a_nf.sum() == 784 * a.params["n_failing"]
    assert 0 < a.params["n_failing"] < 300 and not a.params["degenerate"]
    np.testing.assert_array_equal(sfl(mnist, x, n_mutants=300, seed=1).map, a.map)
    # Same mutants read with paper 000's wording (executed = kept, failing = keeps the class):
    # the spectrum is DeepCover's with e <-> n and p <-> f swapped.
    b = sfl(mnist, x, n_mutants=300, seed=1, convention="presence").params["counts"]
    for got, want in [(b.a_ep, c.a_nf), (b.a_ef, c.a_np), (b.a_np, c.a_ef), (b.a_nf, c.a_ep)]:
        np.testing.assert_array_equal(got, want)
    blocks = sfl(mnist, x, n_mutants=200, window=4, measure="ochiai", sigma=0.5)
    assert np.all(blocks.map.reshape(7, 4, 7, 4) == blocks.map.reshape(7, 4, 7, 4)[:, :1, :, :1])


# ---- stopping criterion ------------------------------------------------------------
def first_prefix_naive(model, x, order, group, target):
    """Plain reference: add units one at a time, one forward pass each."""
    for k in range(len(order) + 1):
        keep = np.isin(group, order[:k]).reshape(x.shape[-2:])
        if predict(model, x * keep) == target:
            return k
    return None


@pytest.mark.parametrize("window", [1, 4])
def test_stopping_criterion_is_the_minimal_prefix(mnist, digits, window, rng):
    rows = np.arange(28) // window
    group = (rows[:, None] * (28 // window) + rows[None, :]).ravel()
    for x in digits:
        target = predict(mnist, x)
        maps = [rng.permutation(784).astype(float).reshape(28, 28)]  # integer scores: block sums are exact
        if window == 1:
            maps.append(occlusion(mnist, x).map)
        for ranking in maps:
            unit_scores = np.bincount(group, weights=ranking.ravel())
            order = np.argsort(-unit_scores, kind="stable")
            res = stopping_criterion(mnist, x, ranking, window=window, batch=16)
            k = res.size
            assert k == first_prefix_naive(mnist, x, order, group, target)
            # the returned mask predicts the class (fresh pass); the prefix one smaller does not
            assert res.mask.shape == (28, 28) and res.mask.dtype == bool
            assert predict(mnist, x * res.mask) == target
            np.testing.assert_array_equal(res.mask.ravel(), np.isin(group, order[:k]))
            if k > 0:
                assert predict(mnist, x * np.isin(group, order[: k - 1]).reshape(28, 28)) != target
            # coarse-to-fine: a working size whose predecessor fails, never below the minimum
            fast = stopping_criterion(mnist, x, ranking, window=window, batch=8, search="bisect")
            assert fast.size >= k and predict(mnist, x * fast.mask) == target
            smaller = np.isin(group, order[: fast.size - 1]).reshape(28, 28)
            assert fast.size == 0 or predict(mnist, x * smaller) != target


def test_stopping_criterion_without_a_working_prefix(mnist, digits, rng):
    x = digits[1]
    ranking = rng.random((28, 28))
    order = np.argsort(-ranking.ravel(), kind="stable")
    seen = {predict(mnist, x * np.isin(np.arange(784), order[:k]).reshape(28, 28)) for k in range(785)}
    never = sorted(set(range(10)) - seen)
    assert never, "pick another input: every class is predicted by some prefix"
    res = stopping_criterion(mnist, x, ranking, target=never[0], batch=50)
    assert res.mask is None and res.size is None
    other = sorted(seen - {predict(mnist, x)})[0]
    res = stopping_criterion(mnist, x, ranking, target=other, batch=50)
    assert predict(mnist, x * res.mask) == other


# ---- RISE ----------------------------------------------------------------------------
def test_rise_is_deterministic_and_agrees_with_occlusion(mnist, digits):
    x = digits[0]
    a = rise(mnist, x, n_masks=500, seed=3, batch=100)
    b = rise(mnist, x, n_masks=500, seed=3, batch=37)
    np.testing.assert_allclose(a.map, b.map, rtol=1e-10, atol=1e-12)
    assert not np.allclose(rise(mnist, x, n_masks=500, seed=4).map, a.map)
    occ = occlusion(mnist, x)
    assert np.corrcoef(a.map.ravel(), occ.map.ravel())[0, 1] > 0.2


def test_rise_masks_are_smooth_upsampled_grids(rng):
    grids, dy, dx = rise_masks(rng, 200, (28, 28), 4, 0.5)
    assert grids.shape == (200, 7, 7) and dy.max() < 4 and dx.max() < 4
    masks = render_rise_masks(grids, dy, dx, (28, 28), 4)
    assert masks.shape == (200, 28, 28)
    assert masks.min() >= 0.0 and masks.max() <= 1.0
    assert abs(masks.mean() - 0.5) < 0.05
    ones = render_rise_masks(np.ones((1, 7, 7)), dy[:1], dx[:1], (28, 28), 4)
    np.testing.assert_allclose(ones, 1.0)  # interpolation weights sum to one


# ---- CENTERBOX / MAXBOX ------------------------------------------------------------
@pytest.mark.parametrize("shape", [(224, 224), (28, 28), (9, 9), (100, 50)])
def test_centerbox_covers_half_the_area(shape):
    box = center_box(shape)
    assert abs(box.mean() - 0.5) < 0.02
    rows, cols = np.flatnonzero(box.any(axis=1)), np.flatnonzero(box.any(axis=0))
    assert box.sum() == len(rows) * len(cols)  # one solid rectangle
    assert abs(rows[0] - (shape[0] - 1 - rows[-1])) <= 1 and abs(cols[0] - (shape[1] - 1 - cols[-1])) <= 1


def test_centerbox_and_maxbox_maps(mnist, digits):
    c = centerbox(mnist, digits[0])
    assert c.map.shape == (28, 28) and abs(c.map.mean() - 0.5) < 0.02
    np.testing.assert_array_equal(maxbox(mnist, digits[0]).map, np.ones((28, 28)))


# ---- one call shape --------------------------------------------------------------
SMALL = {
    "occlusion": dict(patch=3, stride=3),
    "rise": dict(n_masks=32, cell=3),
    "sfl": dict(n_mutants=32),
    "centerbox": {},
    "maxbox": {},
}


def test_every_method_has_one_call_shape(tiny_conv, rng):
    model, _ = tiny_conv
    x = rng.normal(size=model.input_shape).astype(np.float32)
    before = model.proto.SerializeToString()
    for name, fn in PERTURBATION_METHODS.items():
        att = fn(model, x, None, **SMALL[name])
        assert isinstance(att, Attribution) and att.method == name
        assert att.map.shape == (9, 9) and np.all(np.isfinite(att.map))
        assert att.target == predict(model, x) and att.seconds >= 0
        assert name in METHODS
        saliency, info = METHODS[name](model, x, 1, **SMALL[name])
        assert saliency.shape == (9, 9) and isinstance(info, dict)
    assert model.proto.SerializeToString() == before  # the user's model is untouched


def test_flat_inputs_get_flat_maps(rng):
    """A (n,) input is one row of n features; blocks do not group features."""
    from onnx import TensorProto, helper, numpy_helper

    from smug.models.runtime import OnnxModel

    G = rng.normal(size=(3, 12)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "G"], ["y"], transB=1)], "flat",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [numpy_helper.from_array(G, "G")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    model = OnnxModel.from_proto(proto, "flat")
    x = rng.normal(size=12).astype(np.float32)
    for name, fn in PERTURBATION_METHODS.items():
        assert fn(model, x, **SMALL[name]).map.shape == (12,)
    ranking = rng.permutation(12).astype(float)
    order = np.argsort(-ranking, kind="stable")
    for target in range(3):
        res = stopping_criterion(model, x, ranking, target=target, window=4)
        k = next((k for k in range(13) if predict(model, x * np.isin(np.arange(12), order[:k])) == target), None)
        assert res.size == k
        if k is not None:
            assert predict(model, x * res.mask) == target


@pytest.mark.parametrize("sigma", [0.3, (0.0, 1.0), 1.0, 0.0])
def test_mutant_masks_are_the_k_smallest_random_keys(sigma):
    """Each mutant masks exactly round(s n) units: those whose random keys rank below
    round(s n) in a full sort (the plain definition), from the same generator draws."""
    n, units = 40, 97
    got = mutant_masks(np.random.default_rng(5), n, units, sigma)
    rng = np.random.default_rng(5)
    frac = np.full(n, float(sigma)) if np.ndim(sigma) == 0 else rng.uniform(*sigma, n)
    k = np.rint(frac * units).astype(np.int64)
    ranks = rng.random((n, units)).argsort(axis=1).argsort(axis=1)
    np.testing.assert_array_equal(got, ranks < k[:, None])
    np.testing.assert_array_equal(got.sum(axis=1), k)
