"""Benchmark generator: synthetic first-layer mask problems that are hard for exact solvers (issue 3).

:func:`hard_first_layer` builds paper 003's Eq. 3 for a random convolutional stem
over a smooth-noise image, without any model file:

* the image is Gaussian-filtered white noise (3 channels, ``sigma`` pixels, default
  :data:`SMOOTHING_SIGMA`), scaled so that its largest magnitude is 1 (values in
  [-1, 1]);
* the stem is a random He-normal convolution (weights ``N(0, 2 / fan_in)``,
  ``fan_in = 3 * kernel**2``), no bias, stride ``stride``, zero padding
  ``kernel // 2`` on every side ("same"-style);
* the ``k`` neurons with the largest *positive* pre-activation are kept (fewer
  when fewer are positive) and encoded with :func:`smug.encoders.smug.build_problem`
  (form ``"linear"``, masked-out value 0) over ``window x window`` pixel blocks.

``channels_out`` defaults to 32, the stem width of the measurements in
``shared/notes/solver-facts.md`` (section A) and of EfficientNet-Lite0;
Inception-v1's 7x7 stem has 64 channels (pass ``channels_out=64``).  With a 7x7
kernel, stride 2 and 4x4 blocks a row reads 4, 6 or 9 blocks, and at ``gamma = 0``
the problem was hard for every backend (k = 3000 in the notes: HiGHS 106 s, z3 MaxSAT
278 s); :func:`smug.solver.solve.solve` now proves it in about 2 s
(``python -m smug.bench.hard_first_layer``).  A 3x3 kernel is the easy reference.  Everything is
deterministic for a given ``seed``.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from smug.encoders.blocks import BlockGrid
from smug.encoders.first_layer import FirstLayer
from smug.ir import MaskProblem
from smug.encoders.smug import build_problem, select_top_k

# Gaussian smoothing in pixels.  Smoother images concentrate the most positive neurons
# in a few regions, so many rows share few blocks: at sigma 3 (k = 3000, 7x7) the
# problem falls into 49 components of <= 580 blocks and HiGHS proves it in 1 s; at
# sigma 12 it has 18 components of <= 146 blocks and <= 551 rows, HiGHS finds
# 216 but does not prove it in 120 s, reproducing solver-facts.md section A
# (k = 1000: optimum 81 here, 85 there; k = 3000: 216 here, 227 there).
SMOOTHING_SIGMA = 12.0


def smooth_noise_image(size: int = 224, seed: int = 0, channels: int = 3,
                       sigma: float = SMOOTHING_SIGMA) -> np.ndarray:
    """(channels, size, size) float64 Gaussian-filtered noise, max |value| = 1."""
    if size < 1 or channels < 1:
        raise ValueError("size and channels must be positive")
    if sigma < 0:
        raise ValueError(f"sigma must be non-negative, got {sigma}")
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((channels, size, size))
    smooth = np.stack([gaussian_filter(c, sigma=sigma, mode="reflect") for c in noise])
    peak = float(np.abs(smooth).max())
    return smooth / peak if peak > 0 else smooth


def random_stem(kernel: int = 7, channels_out: int = 32, channels_in: int = 3, size: int = 224,
                stride: int = 2, seed: int = 0) -> FirstLayer:
    """A bias-free He-normal conv stem with 'same'-style zero padding ``kernel // 2``."""
    if kernel < 1 or channels_out < 1 or stride < 1:
        raise ValueError("kernel, channels_out and stride must be positive")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))  # independent of the image
    fan_in = channels_in * kernel * kernel
    weight = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=(channels_out, channels_in, kernel, kernel))
    pad = kernel // 2
    out = (size + 2 * pad - kernel) // stride + 1
    return FirstLayer(
        kind="conv", weight=weight, bias=np.zeros(channels_out),
        input_shape=(channels_in, size, size), output_shape=(channels_out, out, out),
        preact_tensor="stem", activation_tensor="stem_relu", activation="Relu",
        stride=(stride, stride), pads=(pad, pad, pad, pad),
    )


def hard_first_layer(kernel: int = 7, k: int = 3000, gamma: float = 0.0, window: int = 4, seed: int = 0,
                     size: int = 224, channels_out: int = 32, stride: int = 2,
                     sigma: float = SMOOTHING_SIGMA) -> MaskProblem:
    """Eq. 3 for the ``k`` most positive neurons of a random stem on smooth noise (module doc)."""
    if k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    x = smooth_noise_image(size, seed, sigma=sigma)
    layer = random_stem(kernel, channels_out, x.shape[0], size, stride, seed)
    preact = layer.preactivation(x, with_bias=False)
    neurons = select_top_k(preact, k)
    grid = BlockGrid(layer.input_shape, window)
    problem, _ = build_problem(layer, x, neurons, grid, gamma, form="linear", baseline=0.0)
    return problem
