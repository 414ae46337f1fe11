"""Extremal perturbations (Fong, Patrick & Vedaldi, ICCV 2019), written from the paper.

The *preserve* game looks for the mask ``m`` of a given area ``a`` that keeps the
target score of the perturbed input highest::

    max_m  Phi(x * m + blur(x) * (1 - m))   s.t.  area(m) = a

(the *delete* game, ``variant="delete"``, minimises the score with the roles of
``m`` and ``1 - m`` swapped: ``m`` marks the deleted region).  As in the paper:

* **Smooth masks.**  The free parameters are a coarse grid ``mbar`` in [0, 1] with
  one value every ``step`` pixels (grid point ``(i, j)`` sits at pixel
  ``(i * step, j * step)``).  The mask is the paper's *smooth max-convolution*
  ``m(u) = max_k g_sigma(u - u_k) mbar_k`` with the unnormalised Gaussian
  ``g_sigma(z) = exp(-|z|^2 / (2 sigma^2))`` (so ``m`` stays in [0, 1] and a single
  grid value of 1 makes a Gaussian bump of width ``sigma``).  We use the hard max
  (its gradient goes to the maximising grid point) rather than the paper's
  temperature-annealed smooth max; because the kernel is separable and positive
  the max is computed separably, rows then columns (:func:`smooth_mask`).
* **Blur perturbation.**  The "deleted" value of a pixel is the input blurred by a
  fixed isotropic Gaussian (``blur_sigma`` pixels, reflecting borders, every
  channel separately; :func:`gaussian_blur`), blended linearly by the mask
  (:func:`perturb`).  The paper's perturbation pyramid (several blur levels picked
  by the mask value) is not used: one blur level, a linear blend.
* **Area constraint.**  The paper's ranking regulariser
  ``R_a(m) = ||vecsort(m) - r_a||^2`` where ``r_a`` is the sorted ideal mask,
  ``(1 - a) |Omega|`` zeros then ``a |Omega|`` ones (rounded to whole pixels);
  here divided by ``|Omega|`` (:func:`area_regulariser`) so that the weight ``lam``
  does not depend on the image size.  Loss = ``-score + lam * R_a(m)``.
* **Optimisation.**  Adam on ``mbar`` (``lr``, ``iterations``), projected back to
  [0, 1] after every step, from a uniform grid ``mbar = init`` (default: the area,
  so the optimisation starts from a uniform blend of the wanted mean area).
  ``Phi`` is the target's logit (``score="logit"``, default; on MNIST it kept the
  class better than ``score="log_softmax"``, whose gradient vanishes near
  probability 1).  Gradients come from
  :func:`~smug.baselines.gradients.fast_torch` (a torch copy of the ONNX graph,
  never modified, its constant shape arithmetic folded); several areas (``area`` a
  sequence) are optimised at once as one batch (the loss is a sum over areas, so
  each mask evolves as if alone).  The blurred input is computed once per call.
* **Cost per step.**  One forward and backward pass of the network dominates; the
  mask's two separable maxima are found without autograd and re-read through a
  gather (the backward pass is a scatter into the grid), and the regulariser uses
  ``||sort(m) - r_a||^2 = sum m^2 - sum over the K = round(a |Omega|) largest m of
  (2 m - 1)`` with a top-K instead of a full sort -- same values, same gradients.
* **Iterations.**  300 Adam steps by default.  The paper's reference code
  (TorchRay, which paper 000 timed) runs 800 steps of SGD with momentum at a smaller
  learning rate.  Our default is a speed/quality choice, not the paper's number
  (``p_final`` in the info says how much of the class probability the final mask
  keeps); pass ``iterations=800`` for the reference budget.

The defaults (``lam`` 300, Adam ``lr`` 0.05, ``step`` ~ side / 32, ``sigma`` side / 20,
``blur_sigma`` side / 22, i.e. about 10 px on 224 px) are our choices, scaled with the
image, checked on MNIST and EfficientNet-Lite0; they are not taken from any code.
On 28 px MNIST digits the default blur (1.3 px) hardly removes a stroke, so the
preserve game is only informative with a stronger ``blur_sigma`` (about 3 px).

Map = the final mask (H, W) (for several areas, their mean; each mask is in
``info['masks']``).  Image inputs only: (C, H, W) or (H, W).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from smug.baselines.attribution import Attribution, register
from smug.baselines.budget import Ticker
from smug.common import softmax
from smug.models.runtime import OnnxModel
from smug.models.torch_backend import torch_module

VARIANTS = ("preserve", "delete")
SCORES = ("logit", "log_softmax")


# ---- pieces (numpy and torch) ------------------------------------------------------
def gaussian_kernel(sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of std ``sigma`` on ``[-r, r]``, ``r = int(4 sigma + 0.5)``
    (scipy.ndimage's default truncation)."""
    r = int(4.0 * float(sigma) + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / float(sigma)) ** 2)
    return k / k.sum()


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """``x`` (..., H, W) blurred over its last two axes by a Gaussian of std ``sigma``
    pixels, borders reflected (``d c b a | a b c d | d c b a``), in float64."""
    x = np.asarray(x, dtype=np.float64)
    if sigma <= 0:
        return x.copy()
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    for axis in (-2, -1):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (r, r)
        xp = np.pad(x, pad, mode="symmetric")
        n = x.shape[axis]
        out = np.zeros_like(x)
        for i, w in enumerate(k):
            out += w * np.take(xp, np.arange(i, i + n), axis=axis)
        x = out
    return x


def perturb(x, mask, blurred):
    """The preserve perturbation ``x * m + blurred * (1 - m)``, masks shared over
    channels.  Works on numpy arrays and torch tensors alike: ``x`` and ``blurred``
    are (C, H, W) or (H, W); ``mask`` is (H, W) or a batch (B, H, W), giving (C, H, W)
    or (B, C, H, W) (resp. (H, W), (B, H, W))."""
    if x.ndim == 3:
        mask = mask[..., None, :, :]
    return x * mask + blurred * (1 - mask)


def grid_shape(spatial: tuple[int, int], step: int) -> tuple[int, int]:
    """(rows, cols) of the parameter grid: points every ``step`` pixels from 0 up to
    the last pixel or beyond."""
    h, w = spatial
    return (math.ceil((h - 1) / step) + 1, math.ceil((w - 1) / step) + 1)


def _kernel_matrix(n: int, n_grid: int, step: int, sigma: float) -> np.ndarray:
    """(n, n_grid) weights ``exp(-(u - k step)^2 / (2 sigma^2))``."""
    d = np.arange(n)[:, None] - step * np.arange(n_grid)[None, :]
    return np.exp(-0.5 * (d / float(sigma)) ** 2)


def smooth_mask(mbar, spatial: tuple[int, int], step: int, sigma: float):
    """Smooth max-convolution: ``m(y, x) = max_{i,j} g(y - i step) g(x - j step) mbar[i, j]``
    for a batch of grids ``mbar`` (B, gh, gw) -> masks (B, H, W).  A torch tensor in
    (differentiable), a torch tensor out; a numpy array in, a numpy array out."""
    h, w = spatial
    gh, gw = mbar.shape[-2:]
    ky = _kernel_matrix(h, gh, step, sigma)  # (H, gh)
    kx = _kernel_matrix(w, gw, step, sigma)  # (W, gw)
    if isinstance(mbar, np.ndarray):
        cols = (mbar[:, :, None, :] * kx[None, None]).max(axis=-1)  # (B, gh, W)
        return (ky[None, :, :, None] * cols[:, None]).max(axis=2)  # (B, H, W)
    torch = torch_module()
    ky = torch.as_tensor(ky, dtype=mbar.dtype, device=mbar.device)
    kx = torch.as_tensor(kx, dtype=mbar.dtype, device=mbar.device)
    b = mbar.shape[0]
    # Each max is found without autograd, then its value re-read through a gather, so
    # the backward pass is a scatter into the grid (not a pass over the (H, gh, W)
    # product): the gradient goes to the maximising grid point.
    with torch.no_grad():  # (torch's max(dim) gives the index faster than argmax here)
        jx = (mbar[:, :, None, :] * kx[None, None]).max(dim=-1).indices  # (B, gh, W)
    kxj = kx[torch.arange(w, device=mbar.device)[None, None], jx]  # kx[x, j*(x)]
    cols = kxj * mbar.gather(2, jx)  # (B, gh, W)
    with torch.no_grad():  # (B, H, W, gh): the max runs over the contiguous last axis
        iy = (ky[None, :, None, :] * cols.transpose(1, 2)[:, None]).max(dim=-1).indices  # (B, H, W)
    kyi = ky[torch.arange(h, device=mbar.device)[None, :, None], iy]  # ky[y, i*(y, x)]
    return kyi * cols.gather(1, iy.reshape(b, h, w))


def ideal_sorted_mask(n: int, area: float) -> np.ndarray:
    """``r_a``: ``n - round(area n)`` zeros then ``round(area n)`` ones."""
    ones = int(round(float(area) * n))
    return np.concatenate([np.zeros(n - ones), np.ones(ones)])


def area_regulariser(masks, areas):
    """``||vecsort(m) - r_a||^2 / |Omega|`` for each mask of a batch (B, H, W) (or one
    mask (H, W)) and its area (a float or one per mask).  Torch in (differentiable),
    torch out; numpy in, numpy out."""
    single = masks.ndim == 2
    if single:
        masks = masks[None]
    b = masks.shape[0]
    flat = masks.reshape(b, -1)
    n = flat.shape[1]
    areas = np.broadcast_to(np.asarray(areas, dtype=np.float64), (b,))
    ref = np.stack([ideal_sorted_mask(n, a) for a in areas])
    if isinstance(masks, np.ndarray):
        out = ((np.sort(flat, axis=1) - ref) ** 2).mean(axis=1)
    else:
        # The same sum without a full sort: with K = round(a n) ones at the top of r_a,
        # ||sort(m) - r_a||^2 = sum m^2 - sum over the K largest m of (2 m - 1).
        # (One top-K per mask, so a mask's value and gradient do not depend on the batch.)
        torch = torch_module()
        tops = [torch.topk(row, int(k), sorted=False).values for row, k in zip(flat, ref.sum(axis=1))]
        out = ((flat**2).sum(dim=1) - torch.stack([(2 * t - 1).sum() for t in tops])) / n
    return out[0] if single else out


def default_step(spatial: tuple[int, int]) -> int:
    """About 32 grid cells across the shorter side: 7 px on 224, 1 px on 28."""
    return max(1, round(min(spatial) / 32))


def default_sigma(spatial: tuple[int, int]) -> float:
    """Width of the smooth max-convolution: a 20th of the shorter side (11.2 px on 224,
    1.4 px on 28)."""
    return min(spatial) / 20.0


def default_blur_sigma(spatial: tuple[int, int]) -> float:
    """About a 22nd of the shorter side: ~10 px on 224 (as in the paper), ~1.3 px on 28."""
    return min(spatial) / 22.0


def _spatial(input_shape: tuple[int, ...]) -> tuple[int, int]:
    if len(input_shape) not in (2, 3):
        raise ValueError(f"extremal perturbation needs an image input (C, H, W) or (H, W), got {input_shape}")
    return int(input_shape[-2]), int(input_shape[-1])


def extremal_perturbation_input(x: np.ndarray, mask: np.ndarray, blur_sigma: float | None = None,
                                variant: str = "preserve") -> np.ndarray:
    """The input the model sees for ``mask`` (H, W) (or a batch (B, H, W)):
    ``x * m + blur(x) * (1 - m)`` for ``preserve``; ``delete`` swaps ``m`` and ``1 - m``.
    ``blur_sigma`` defaults as in :func:`extremal_perturbation`.  float32."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant '{variant}': choose one of {list(VARIANTS)}")
    x = np.asarray(x, dtype=np.float32)
    spatial = _spatial(x.shape)
    if blur_sigma is None:
        blur_sigma = default_blur_sigma(spatial)
    blurred = gaussian_blur(x, blur_sigma).astype(np.float32)
    m = np.asarray(mask, dtype=np.float32)
    if variant == "delete":
        m = np.float32(1) - m
    return perturb(x, m, blurred).astype(np.float32)


# ---- the method ----------------------------------------------------------------
@register("extremal_perturbation")
def _extremal(model: OnnxModel, x: np.ndarray, target: int, area: float | Sequence[float] = 0.1,
              iterations: int = 300, step: int | None = None, sigma: float | None = None,
              blur_sigma: float | None = None, lam: float = 300.0, lr: float = 0.05, init: float | None = None,
              variant: str = "preserve", score: str = "logit") -> tuple[np.ndarray, dict]:
    """Extremal perturbation mask of ``target`` (see the module docstring).

    Params: ``area`` (fraction of the image the mask keeps -- deletes for
    ``variant="delete"`` -- default 0.1; a sequence optimises one mask per area in one
    batch), ``iterations`` (Adam steps, 300), ``step`` (grid spacing in pixels,
    :func:`default_step`), ``sigma`` (smoothing of the max-convolution in pixels,
    :func:`default_sigma`), ``blur_sigma`` (:func:`default_blur_sigma`), ``lam`` (area
    weight, 300), ``lr`` (Adam, 0.05), ``init`` (initial grid value; default: the
    area, i.e. a uniform mask of the wanted mean area), ``variant``, ``score``.
    ``info`` holds the masks (B, H, W), their mean values ``mask_area``, the area
    regulariser, the target probability (softmax, onnxruntime) of the perturbed
    input for the initial (``p_initial``) and the final masks (``p_final``), one per
    area, and the loss per iteration."""
    spatial = _spatial(model.input_shape)
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant '{variant}': choose one of {list(VARIANTS)}")
    if score not in SCORES:
        raise ValueError(f"unknown score '{score}': choose one of {list(SCORES)}")
    single = np.ndim(area) == 0
    areas = np.atleast_1d(np.asarray(area, dtype=np.float64))
    if areas.size < 1 or np.any(areas < 0) or np.any(areas > 1):
        raise ValueError(f"areas must lie in [0, 1], got {area}")
    step = default_step(spatial) if step is None else int(step)
    sigma = default_sigma(spatial) if sigma is None else float(sigma)
    blur_sigma = default_blur_sigma(spatial) if blur_sigma is None else float(blur_sigma)
    inits = areas.copy() if init is None else np.full(len(areas), float(init))
    if step < 1 or sigma <= 0 or int(iterations) < 0 or np.any(inits < 0) or np.any(inits > 1):
        raise ValueError(f"need step >= 1, sigma > 0, iterations >= 0 and init in [0, 1], got "
                         f"{step}, {sigma}, {iterations}, {init}")
    iterations = int(iterations)
    sign = 1.0 if variant == "preserve" else -1.0

    torch = torch_module()
    from smug.baselines.gradients import fast_torch, module_device

    module = fast_torch(model)

    dev = module_device(module)
    x = np.asarray(x, dtype=np.float32)
    xt = torch.as_tensor(x, device=dev)
    blurred_np = gaussian_blur(x, blur_sigma).astype(np.float32)  # computed once per call
    blurred = torch.as_tensor(blurred_np, device=dev)
    n_areas = len(areas)
    start = np.broadcast_to(inits[:, None, None], (n_areas, *grid_shape(spatial, step)))
    mbar = torch.tensor(start, dtype=torch.float32, device=dev, requires_grad=True)
    opt = torch.optim.Adam([mbar], lr=float(lr))

    def objective(m):
        keep = m if variant == "preserve" else 1 - m
        logits = module(perturb(xt, keep, blurred))
        if score == "log_softmax":
            logits = torch.log_softmax(logits, dim=1)
        s = logits[:, target]
        reg = area_regulariser(m, areas)
        return s, reg

    history = []
    ticker = Ticker("extremal_perturbation", iterations)
    for _ in range(iterations):
        if ticker.stopped:
            break
        m = smooth_mask(mbar, spatial, step, sigma)
        s, reg = objective(m)
        loss = (-sign * s + float(lam) * reg).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            mbar.clamp_(0.0, 1.0)
        history.append(float(loss.detach()))
        ticker.tick()
    with torch.no_grad():
        m = smooth_mask(mbar, spatial, step, sigma)
        reg = area_regulariser(m, areas)
    masks = m.detach().double().cpu().numpy()

    init_masks = smooth_mask(np.array(start), spatial, step, sigma)
    keep = np.concatenate([init_masks, masks]).astype(np.float32)
    probe = perturb(x, keep if variant == "preserve" else np.float32(1) - keep, blurred_np).astype(np.float32)
    probs = softmax(model.logits(probe), axis=1)[:, target]
    info = dict(
        area=float(areas[0]) if single else tuple(float(a) for a in areas), iterations=iterations, step=step,
        sigma=sigma, blur_sigma=blur_sigma, lam=float(lam), lr=float(lr),
        init=None if init is None else float(init), variant=variant, score=score, grid_shape=tuple(mbar.shape[1:]), masks=masks, mask_area=masks.reshape(n_areas, -1).mean(1),
        area_regulariser=reg.double().cpu().numpy(), p_initial=probs[:n_areas], p_final=probs[n_areas:],
        loss_history=np.asarray(history), iterations_run=len(history), stopped_at_deadline=ticker.stopped,
    )
    saliency = masks[0] if single else masks.mean(axis=0)
    return saliency, info


def extremal_perturbation(model: OnnxModel, x: np.ndarray, target: int | None = None, **params) -> Attribution:
    """Extremal perturbation map (preserve game by default); params as :func:`_extremal`."""
    x, target = model.checked_input(x, target)
    t0 = time.perf_counter()
    saliency, info = _extremal(model, x, target, **params)
    return Attribution(method="extremal_perturbation", map=np.asarray(saliency), target=target, params=info,
                       seconds=time.perf_counter() - t0)
