"""LSC (paper 003 Eq. 5), its threshold sweep, and OPTBOX, on hand-made maps and a stub
classifier whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smug.metrics.lsc import (
    LSC, Box, OptBox, crop_resize, grid_boxes, level_mask, lsc_score, resize_matrix, thresholds, tight_box,
)


class MeanStub:
    """A two-class 'classifier' of (1, H, W) inputs: logits ``[s * mean(x), 0]``, so
    ``P(class 0) = sigmoid(s * mean(x))``.  Counts the inputs it classifies."""

    def __init__(self, h: int = 20, w: int = 20, s: float = 4.0):
        self.input_shape = (1, h, w)
        self.s = s
        self.seen = 0

    def logits(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        assert x.shape[1:] == self.input_shape
        self.seen += len(x)
        m = x.reshape(len(x), -1).mean(axis=1)
        return np.stack([self.s * m, np.zeros_like(m)], axis=1)

    def checked_input(self, x, target=None):
        x = np.asarray(x, dtype=np.float32)
        return x, int(self.logits(x[None])[0].argmax()) if target is None else int(target)


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def square_image(h=20, w=20, rows=(6, 12), cols=(4, 10)) -> np.ndarray:
    x = np.zeros((1, h, w), dtype=np.float32)
    x[0, rows[0] : rows[1], cols[0] : cols[1]] = 1.0
    return x


def test_tight_box_of_hand_made_masks():
    m = np.zeros((8, 9), bool)
    assert tight_box(m) is None
    m[2, 3] = True
    assert tight_box(m) == Box(2, 3, 3, 4)
    m[5, 7] = True
    assert tight_box(m) == Box(2, 3, 6, 8)
    assert tight_box(m).pixels == 4 * 5
    with pytest.raises(ValueError, match="H, W"):
        tight_box(np.zeros((2, 2, 2)))


def test_score_formula_and_area_floor():
    assert lsc_score(0.5, 0.8) == pytest.approx(math.log(0.5) - math.log(0.8))
    # areas below 0.05 all count as 0.05
    assert lsc_score(0.01, 0.8) == pytest.approx(math.log(0.05) - math.log(0.8))
    assert lsc_score(0.0, 0.8) == lsc_score(0.05, 0.8)
    assert lsc_score(0.3, 0.0) == math.inf
    with pytest.raises(ValueError, match="area"):
        lsc_score(1.5, 0.5)


def test_resize_matches_torch_bilinear(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(3, 24, 30)).astype(np.float32)
    box = Box(5, 7, 13, 26)
    ours = crop_resize(x, box)
    crop = torch.as_tensor(x[None, :, 5:13, 7:26])
    ref = torch.nn.functional.interpolate(crop, size=(24, 30), mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert np.allclose(resize_matrix(7, 7), np.eye(7))  # same size: identity
    np.testing.assert_allclose(crop_resize(x, Box(0, 0, 24, 30)), x, atol=1e-6)


def test_quantize_variant_min_max_rounds_each_crop():
    x = np.linspace(-1, 1, 16, dtype=np.float32).reshape(1, 4, 4)
    q = crop_resize(x, Box(0, 0, 4, 4), quantize=(-1.0, 1.0))
    levels = (q + 1.0) / 2.0 * 255.0
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-3)  # on the uint8 grid
    assert q.min() == pytest.approx(-1.0) and q.max() == pytest.approx(1.0)


def test_thresholds_are_zero_and_distinct_positive_values():
    s = np.array([[0.0, -1.0, 0.2], [0.2, 0.5, 0.9]])
    np.testing.assert_allclose(thresholds(s), [0.0, 0.2, 0.5, 0.9])
    big = np.arange(1, 1001, dtype=float).reshape(25, 40)
    t = thresholds(big, n_thresholds=100)
    assert len(t) == 100 and t[0] == 0 and t[1] == 1 and t[-1] == 1000
    assert np.all(np.diff(t) > 0)
    np.testing.assert_array_equal(level_mask(s, 0), s > 0)
    np.testing.assert_array_equal(level_mask(s, 0.5), s >= 0.5)


def test_sweep_finds_the_object_box_with_the_known_score():
    """High values on the object square, low values on a large frame around it: the
    threshold above the frame isolates the square, whose crop is all ones."""
    stub = MeanStub(s=4.0)
    x = square_image()
    s = np.zeros((20, 20))
    s[1:19, 1:19] = 0.1  # the frame: a big box
    s[6:12, 4:10] = 1.0  # the object
    s[7, 5] = 2.0  # a single hottest pixel: tiny box, crop of ones too
    r = LSC(n_thresholds=100)(stub, x, s, target=0)
    c = sigmoid(4.0)
    # hottest pixel: area 1/400 < 0.05 -> floored; the crop is one pixel of 1 -> c = sigmoid(4)
    assert r.box == Box(7, 5, 8, 6)
    assert r.score == pytest.approx(math.log(0.05) - math.log(c))
    assert r.threshold == 2.0 and r.confidence == pytest.approx(c) and not r.empty
    # without the hottest pixel the object's box wins: area 36/400 = 0.09
    s[7, 5] = 1.0
    r = LSC()(stub, x, s, target=0)
    assert r.box == Box(6, 4, 12, 10) and r.area == pytest.approx(0.09)
    assert r.score == pytest.approx(math.log(0.09) - math.log(c))
    # the frame's box alone: mean of the resized crop of 18x18 with the 6x6 square
    r_frame = LSC()(stub, x, np.where(s > 0, 0.1, 0.0), target=0)
    assert r_frame.box == Box(1, 1, 19, 19)
    c_frame = sigmoid(4.0 * crop_resize(x, Box(1, 1, 19, 19)).mean())
    assert r_frame.score == pytest.approx(math.log(18 * 18 / 400) - math.log(c_frame))


def test_sweep_equals_brute_force_over_its_thresholds(rng):
    """The pruned, deduplicated search returns the minimum over every threshold's box."""
    stub = MeanStub(s=3.0)
    x = rng.uniform(0, 1, size=(1, 20, 20)).astype(np.float32)
    s = rng.gamma(1.0, size=(20, 20)) * (rng.uniform(size=(20, 20)) < 0.6)
    r = LSC(n_thresholds=30)(stub, x, s, target=0)
    scores = []
    for t in thresholds(s, 30):
        b = tight_box(level_mask(s, t))
        c = sigmoid(3.0 * float(crop_resize(x, b).astype(np.float64).mean()))
        scores.append(lsc_score(b.pixels / 400, c))
    assert r.score == pytest.approx(min(scores))
    assert r.boxes <= r.candidates <= 30


def test_negative_target_and_empty_map_scores_the_whole_image():
    stub = MeanStub()
    x = square_image()
    r = LSC()(stub, x, -np.ones((20, 20)), target=0)
    assert r.empty and r.box == Box(0, 0, 20, 20) and r.area == 1.0 and r.threshold is None
    assert r.score == pytest.approx(-math.log(sigmoid(4.0 * x.mean())))
    # a full-shape (C, H, W) map is summed over channels
    r2 = LSC()(stub, x, np.ones((1, 20, 20)), target=0)
    assert r2.area == 1.0
    with pytest.raises(ValueError, match="does not fit"):
        LSC()(stub, x, np.ones((5, 5)), target=0)
    with pytest.raises(ValueError, match="NaN"):
        LSC()(stub, x, np.full((20, 20), np.nan), target=0)
    with pytest.raises(ValueError, match="n_thresholds"):
        LSC(n_thresholds=1)


def test_grid_boxes_count_and_cover():
    boxes = grid_boxes((224, 224), 10)
    assert len(boxes) == 55 * 55 == 3025
    assert Box(0, 0, 224, 224) in boxes
    assert min(b.pixels for b in boxes) == 22 * 22  # cell edges at round(22.4 i): sides 22 or 23
    assert all(b.bottom <= 224 and b.right <= 224 and b.pixels > 0 for b in boxes)
    assert len(set(boxes)) == len(boxes)


def test_optbox_equals_brute_force_and_prunes():
    stub = MeanStub(s=4.0)
    x = square_image(rows=(6, 12), cols=(4, 10))
    r = OptBox(cells=10)(stub, x, target=0)
    best = min(lsc_score(b.pixels / 400, sigmoid(4.0 * float(crop_resize(x, b).astype(np.float64).mean())))
               for b in grid_boxes((20, 20), 10))
    assert r.score == pytest.approx(best)
    # a box of ones inside the square at the area floor: log(0.05) - log(sigmoid(4))
    assert r.score == pytest.approx(math.log(0.05) - math.log(sigmoid(4.0)))
    assert r.area <= 0.05 and r.candidates == 3025
    assert r.boxes < 3025  # the area bound stopped the search early
    m, r2 = OptBox(cells=10).map(stub, x, target=0)
    assert m.sum() == r2.box.pixels and r2.score == r.score
