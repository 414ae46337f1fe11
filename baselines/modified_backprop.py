"""Modified-backpropagation baselines: RectGrad, LRP z+ (alpha1-beta0) and DTD z^B.

Notation of paper 004 (Zheng, Sang & Xu, section III-A): ``A_l`` is the output of
the l-th ReLU-like unit, ``r_l`` the signal propagated back to it, ``F_c`` the
target's logit.  Methods (registered in :mod:`.attribution`):

* ``rectgrad``: Rectified Gradient (Kim et al.; paper 004 Eqs. 7 and 15).  At every
  ReLU-like unit (ReLU, ReLU6, Clip(0, max)) the backward signal passes only where
  ``A_l * r_l > tau``::

      r_{l-1} = W_l M_l (r_l * 1[A_l * r_l > tau_l])

  with ``tau_l`` the ``percentile``-th percentile (default 98, Kim et al.'s
  default; paper 004 uses 90) of ``A_l * r_l`` over the whole layer of this one
  input (numpy's linear interpolation), or one absolute ``tau`` for every layer.
  The unit's own derivative ``M_l`` stays (Eq. 15; for ``tau >= 0`` it changes
  nothing since ``A_l = 0`` where ``M_l = 0``).  Bottom process (Eq. 7):
  ``R = ReLU(x * r_0)``; map = per-pixel *sum* over channels (``R`` is an
  input-times-signal attribution like gradient x input, so channel contributions
  add; it is nonnegative).  Special cases, both exact: ``tau=-inf`` is
  ``ReLU(x * dF_c/dx)`` (gradient x input) and ``tau=0`` is Guided Backprop's
  ``r_0`` (paper 004 Eq. 6: ``A_l > 0`` on active units, so ``A_l r_l > 0`` iff
  ``r_l > 0``).  ``percentile=0`` sets ``tau_l = min(A_l r_l)`` and the strict
  ``>`` of the paper then drops the unit(s) attaining that minimum: it equals
  gradient x input exactly where that minimum is 0 in every layer (no active unit
  with a negative ``A_l r_l``), otherwise it differs by the dropped unit(s).

* ``lrp_zplus`` / ``dtd_zb`` (one function, two names): LRP-alpha1-beta0, i.e. the
  z+ rule (paper 004 Eq. 10, with ``z_ij^+ = (x_i w_ij)^+``; for the nonnegative
  inputs of post-ReLU layers that is ``x_i w_ij^+``)::

      R_i = sum_j (x_i w_ij)^+ / sum_k (x_k w_kj)^+ * R_j

  at every Linear / Conv (groups and depthwise included), with the DTD z^B rule
  (paper 004 Eq. 11) at the layers that read the input (``input_rule="zb"``, the
  default for both names)::

      R_i = sum_j (x_i w_ij - l_i w_ij^+ - h_i w_ij^-) / sum_k (same) * R_j

  or z+ there too (``input_rule="zplus"``: paper 004's LRP).  Relevance starts at
  the target logit (``R = F_c`` on the target, 0 elsewhere).  Biases are ignored
  (paper 004: "the BP-based attributions ... do not use the biases"), so every
  layer conserves relevance exactly except where a denominator is 0 (a unit
  kept active only by its bias: on EfficientNet-Lite0, whose depthwise kernels
  after BatchNorm folding are often all <= 0 on a channel, most relevance is lost
  there and at the residual Adds; ``info['conservation_error']`` reports it);
  ``bias=True`` puts the positive bias part into the z+ denominator (zennit's
  ``ZPlus`` default), where it absorbs relevance.  Denominators ``z`` are
  stabilised as ``z + epsilon * sign(z)`` (sign(0) = +1), as zennit does.
  Other units: a BatchNorm right after a Linear/Conv is folded into it (as
  zennit's canonizers do), any other BatchNorm is a diagonal linear layer under
  z+; ReLU-like units pass relevance unchanged (zennit's ``Pass``); average
  pooling is a linear layer with nonnegative weights under z+; an Add of two
  tensors splits ``R`` in proportion to the positive parts ``a^+ / (a^+ + b^+)``
  (z+ on a sum node; zennit's ``Norm`` uses the signed parts instead); Flatten,
  Reshape, Pad, Transpose, Concat, Slice, Squeeze, Cast and max pooling route
  relevance by their gradient (max pooling: winner takes all).  Any other
  operation on the data path raises ``ValueError``.
  Input bounds ``low``/``high`` (scalars or arrays broadcastable to the input):
  default from the zoo preprocessing of the model (``(0 - offset)/scale`` to
  ``(255 - offset)/scale``: MNIST 0..1, Lite0 -127/128..1), else the input's own
  min/max.  Bounds are pushed through the structural ops before the first
  layer, so padding has the bounds [0, 0] of its constant zeros.
  Map = per-pixel sum of the input relevance over channels.

Cascade substitution (paper 004 Def. 3): ``levels=N`` (RectGrad, LRP z+) applies
the rule only in the top N layers -- ReLU-like units for RectGrad, Linear/Conv for
z+ -- and the plain gradient below (:func:`rectgrad_signal`, :func:`lrp_relevance`;
used by :mod:`smug.metrics.cascade`).  ``levels=None`` (default) is the method itself.

Every method hooks its own deep copy of :func:`full_torch` (kept per model wrapper
by :meth:`~smug.models.runtime.OnnxModel.derived`); the user's model and the cached
``full_torch`` are untouched.
"""

from __future__ import annotations

import copy
import math
import threading

import numpy as np

from smug.baselines.attribution import full_torch, register
from smug.baselines.gradients import model_input, relu_like, sum_channels
from smug.models.runtime import OnnxModel
from smug.models.torch_backend import torch_module


# ---- RectGrad ----------------------------------------------------------------
def _rectify_function():
    """Identity forward; backward keeps ``g`` where ``A * g > tau`` (``A`` = the
    unit's output), with ``tau`` per sample from ``cfg`` (percentile or absolute)."""
    torch = torch_module()

    class Rectify(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, cfg, index=0):
            ctx.save_for_backward(a)
            ctx.cfg = cfg
            ctx.index = index
            return a.view_as(a)

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            cfg = ctx.cfg
            if cfg.get("levels") is not None and ctx.index < cfg["units"] - cfg["levels"]:
                return g, None, None  # below the substituted top levels: the plain gradient
            s = (a * g).double()
            flat = s.reshape(s.shape[0], -1)
            if cfg["tau"] is not None:
                tau = torch.full((s.shape[0], 1), float(cfg["tau"]), dtype=s.dtype, device=s.device)
            else:
                tau = torch.quantile(flat, cfg["percentile"] / 100.0, dim=1, keepdim=True)
            cfg["thresholds"].append(float(tau[0, 0]))
            keep = (flat > tau).reshape(s.shape)
            return g * keep.to(g.dtype), None, None

    return Rectify


def rectgrad_torch(model: OnnxModel):
    """A deep copy of :func:`full_torch` whose ReLU-like outputs rectify the signal
    passing back (see the module docstring); ``(module, units, state, lock)``,
    kept as ``model.derived("rectgrad_torch", ...)``."""

    def build():
        net = copy.deepcopy(full_torch(model))
        fn = _rectify_function()
        state: dict = {"cfg": None}
        units = [m for m in net.modules() if relu_like(m)]  # forward order: index 0 reads the input side
        for i, m in enumerate(units):
            m.register_forward_hook(lambda mod, args, out, i=i: fn.apply(out, state["cfg"], i))
        return net, len(units), state, threading.Lock()

    return model.derived("rectgrad_torch", build)


def _check_levels(levels, units: int) -> int | None:
    if levels is None:
        return None
    if int(levels) != levels or not 0 <= int(levels) <= units:
        raise ValueError(f"levels must be an integer in 0..{units} (the model's rule-bearing layers), got {levels}")
    return int(levels)


def rectgrad_signal(
    model: OnnxModel, x: np.ndarray, target: int, percentile: float = 98.0, tau: float | None = None,
    levels: int | None = None,
) -> tuple[np.ndarray, dict]:
    """``r_0`` of RectGrad (input's shape, float64) and the call's cfg.  ``levels``:
    paper 004 Def. 3 (N-level cascade substitution): only the top ``levels``
    ReLU-like units (nearest the output) rectify, the others pass the plain gradient;
    ``levels=0`` is the plain gradient, ``None`` (default) rectifies every unit."""
    percentile = float(percentile)
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"rectgrad needs 0 <= percentile <= 100, got {percentile}")
    if tau is not None:
        tau = float(tau)
        if math.isnan(tau):
            raise ValueError("rectgrad: tau must be a number (or -inf), not NaN")
    torch = torch_module()
    net, units, state, lock = rectgrad_torch(model)
    cfg = {"percentile": percentile, "tau": tau, "thresholds": [], "units": units,
           "levels": _check_levels(levels, units)}
    with lock:
        state["cfg"] = cfg
        try:
            xt = model_input(net, x)
            (r0,) = torch.autograd.grad(net(xt)[:, target].sum(), xt)
        finally:
            state["cfg"] = None
    return r0[0].double().cpu().numpy(), cfg


@register("rectgrad")
def rectgrad(
    model: OnnxModel, x: np.ndarray, target: int, percentile: float = 98.0, tau: float | None = None,
    levels: int | None = None,
) -> tuple[np.ndarray, dict]:
    """Paper 004 Eq. 15 back to the input, then ``ReLU(x * r_0)`` summed over channels.
    ``tau`` (absolute, any float incl. ``-inf``) overrides ``percentile`` (0..100);
    ``levels``: cascade substitution (see :func:`rectgrad_signal`)."""
    r0, cfg = rectgrad_signal(model, x, target, percentile, tau, levels)
    attribution = np.maximum(np.asarray(x, dtype=np.float64) * r0, 0.0)
    info = {
        "percentile": cfg["percentile"] if cfg["tau"] is None else None, "tau": cfg["tau"],
        "rectified_units": cfg["units"] if cfg["levels"] is None else cfg["levels"],
        "thresholds": cfg["thresholds"],  # one per rectified unit, in backward order (output to input)
        "reduce": "sum over channels of ReLU(x * r0)",
    }
    if cfg["levels"] is not None:
        info["levels"] = cfg["levels"]
    return sum_channels(attribution).astype(np.float32), info


# ---- LRP: classification of the converted graph --------------------------------
_STRUCTURAL_NAMES = {
    "OnnxReshape", "OnnxFlatten", "OnnxPadStatic", "OnnxPadDynamic", "OnnxTranspose", "OnnxConcat",
    "OnnxSlice", "OnnxSqueezeStaticAxes", "OnnxSqueezeDynamicAxes", "OnnxUnsqueezeStaticAxes",
    "OnnxUnsqueezeDynamicAxes", "OnnxCast",
}


def _kind(leaf, n_data_inputs: int) -> str | None:
    """The LRP rule family of a leaf module, or None when unsupported."""
    nn = torch_module().nn
    name = type(leaf).__name__
    if isinstance(leaf, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return "linear"
    if isinstance(leaf, nn.modules.batchnorm._BatchNorm):
        return "batchnorm"
    if relu_like(leaf) or isinstance(leaf, (nn.Identity, nn.Dropout)):
        return "pass"
    if isinstance(leaf, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                         nn.AdaptiveAvgPool3d)) or name.startswith("OnnxGlobalAveragePool"):
        return "pool"
    if name == "OnnxBinaryMathOperation":
        return "add" if getattr(leaf, "math_op_function", None) is torch_module().add and n_data_inputs == 2 else None
    if isinstance(leaf, (nn.Flatten, nn.Unflatten, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AdaptiveMaxPool1d,
                         nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)) or name in _STRUCTURAL_NAMES:
        return "structural"
    return None


def _leaves(name: str, module):
    """(qualified name, leaf) in execution order; only Sequential containers are opened."""
    nn = torch_module().nn
    if not list(module.children()):
        return [(name, module)]
    if not isinstance(module, nn.Sequential):
        raise ValueError(f"LRP does not know the composite module '{name}' ({type(module).__name__})")
    out = []
    for child_name, child in module.named_children():
        out += _leaves(f"{name}.{child_name}", child)
    return out


def _fold_batchnorm(linear, bn) -> None:
    """``linear <- bn o linear`` in place (float64 arithmetic, stored in the weight's dtype)."""
    torch = torch_module()
    w = linear.weight.detach().double()
    k = (bn.weight.detach().double() if bn.weight is not None else torch.ones_like(bn.running_var.double()))
    k = k / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    shift = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(k)
    b = linear.bias.detach().double() if linear.bias is not None else torch.zeros_like(k)
    new_w = w * k.view((-1,) + (1,) * (w.dim() - 1))
    new_b = (b - bn.running_mean.detach().double()) * k + shift
    linear.weight = torch.nn.Parameter(new_w.to(linear.weight.dtype), requires_grad=False)
    linear.bias = torch.nn.Parameter(new_b.to(linear.weight.dtype), requires_grad=False)


def _replace(root, qualified: str, new) -> None:
    parent_name, _, child = qualified.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, child, new)


def _lrp_plan(net) -> dict:
    """Walk the fx graph of ``net`` (in place): fold BatchNorms into the Linear/Conv
    before them, classify every leaf module on the data path, find the layers that
    read the input.  Raises ``ValueError`` on an unsupported operation."""
    torch = torch_module()
    graph = getattr(net, "graph", None)
    if graph is None:
        raise ValueError("LRP does not apply to this model: it reads the layers of onnx2torch's conversion, and "
                         "onnx2torch could not convert this graph (its gradients come from smug's ONNX evaluator)")
    data: set = set()
    pixel: dict = {}  # node -> its output is the input up to structural ops
    last_leaf: dict = {}  # node -> (name, leaf) executed last
    kinds: dict[str, str] = {}
    leaves: dict[str, object] = {}
    first: list[str] = []
    folded = 0
    for node in graph.nodes:
        if node.op == "placeholder":
            data.add(node)
            pixel[node] = True
            continue
        ins = [a for a in node.all_input_nodes if a in data]
        if not ins or node.op == "output":
            continue
        if node.op != "call_module":
            raise ValueError(f"LRP does not support the operation '{node.target}' ({node.op}) on the data path")
        module = net.get_submodule(str(node.target))
        if type(module).__name__ == "OnnxShape":
            continue  # the shape, not the values: not on the data path
        data.add(node)
        px = all(pixel[a] for a in ins)
        chain = _leaves(str(node.target), module)
        for name, leaf in chain:
            kind = _kind(leaf, len(ins))
            if kind is None:
                raise ValueError(
                    f"LRP does not support '{name}' ({type(leaf).__name__}) on the data path; supported: "
                    "Linear/Conv, BatchNorm, ReLU/ReLU6/Clip(0,.), average pooling, Add, structural ops")
            if kind == "batchnorm" and len(chain) == 1 and len(ins) == 1:
                prev = last_leaf.get(ins[0])
                if prev is not None and kinds.get(prev[0]) == "linear" and len(ins[0].users) == 1:
                    _fold_batchnorm(prev[1], leaf)
                    leaf = torch.nn.Identity()
                    _replace(net, name, leaf)
                    kind, folded = "pass", folded + 1
            if kind == "linear" and px:
                first.append(name)
            if kind != "structural":
                px = False
            kinds[name] = kind
            leaves[name] = leaf
        last_leaf[node] = (chain[-1][0], leaves[chain[-1][0]])
        pixel[node] = px
    return {"kinds": kinds, "leaves": leaves, "first": first, "folded": folded}


# ---- LRP: the rules ------------------------------------------------------------
def _stabilize(z, eps: float):
    torch = torch_module()
    return z + eps * torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))


def _affine(leaf, inp, weight, bias):
    """``leaf``'s forward with other parameters (Linear or ConvNd)."""
    torch = torch_module()
    if isinstance(leaf, torch.nn.Linear):
        return torch.nn.functional.linear(inp, weight, bias)
    return leaf._conv_forward(inp, weight, bias)


def _rule_zplus(leaf, x, R, cfg):
    """z+ (alpha1-beta0): ``R_i = sum_j (x_i w_ij)^+ / stab(sum_k (x_k w_kj)^+ [+ b_j^+]) R_j``."""
    torch = torch_module()
    w = leaf.weight
    bias = leaf.bias.clamp(min=0) if (cfg["bias"] and leaf.bias is not None) else None
    xp = x.clamp(min=0).detach().requires_grad_(True)
    xn = x.clamp(max=0).detach().requires_grad_(True)
    with torch.enable_grad():
        z = _affine(leaf, xp, w.clamp(min=0), bias) + _affine(leaf, xn, w.clamp(max=0), None)
        s = R / _stabilize(z, cfg["epsilon"])
        cp, cn = torch.autograd.grad(z, (xp, xn), grad_outputs=s)
    return xp.detach() * cp + xn.detach() * cn


def _rule_zb(leaf, x, R, cfg, low, high):
    """DTD z^B (paper 004 Eq. 11) with bounds ``low <= x <= high`` (biases cancel)."""
    torch = torch_module()
    w = leaf.weight
    xs = [t.detach().requires_grad_(True) for t in (x, low, high)]
    with torch.enable_grad():
        z = _affine(leaf, xs[0], w, None) - _affine(leaf, xs[1], w.clamp(min=0), None) \
            - _affine(leaf, xs[2], w.clamp(max=0), None)
        s = R / _stabilize(z, cfg["epsilon"])
        grads = torch.autograd.grad(z, xs, grad_outputs=s)
    return sum(t.detach() * g for t, g in zip(xs, grads))


def _rule_batchnorm(leaf, x, R, cfg):
    """A BatchNorm not after a Linear/Conv: ``y = k x + c`` per channel, under z+."""
    torch = torch_module()
    gamma = leaf.weight if leaf.weight is not None else torch.ones_like(leaf.running_var)
    k = gamma / torch.sqrt(leaf.running_var + leaf.eps)
    shape = (1, -1) + (1,) * (x.dim() - 2)
    zp = x.clamp(min=0) * k.clamp(min=0).view(shape) + x.clamp(max=0) * k.clamp(max=0).view(shape)
    den = zp
    if cfg["bias"]:
        beta = leaf.bias if leaf.bias is not None else torch.zeros_like(leaf.running_mean)
        den = zp + (beta - leaf.running_mean * k).clamp(min=0).view(shape)
    return zp * (R / _stabilize(den, cfg["epsilon"]))


def _rule_positive_linear(leaf, inputs, R, cfg):
    """z+ through a map that is linear with nonnegative weights in each input
    (average pooling, Add): only the positive parts of the inputs contribute."""
    torch = torch_module()
    ps = [t.clamp(min=0).detach().requires_grad_(True) for t in inputs]
    with torch.enable_grad():
        z = leaf.forward(*ps)  # .forward: no hooks (calling leaf would relay again)
        s = R / _stabilize(z, cfg["epsilon"])
        grads = torch.autograd.grad(z, ps, grad_outputs=s)
    return tuple(p.detach() * g for p, g in zip(ps, grads))


def _vjp(leaf, inputs, g):
    """The plain gradient through ``leaf`` (vector-Jacobian product at ``inputs``)."""
    torch = torch_module()
    xs = [t.detach().requires_grad_(True) for t in inputs]
    with torch.enable_grad():
        out = leaf.forward(*xs)
        return torch.autograd.grad(out, xs, grad_outputs=g)


def _zplus_signal(leaf, x, R, cfg):
    """The z+ rule in signal form: ``r`` with ``x * r`` = the z+ relevance of ``x``
    (so the layers below can carry on with plain gradients)."""
    torch = torch_module()
    w = leaf.weight
    xp = x.clamp(min=0).detach().requires_grad_(True)
    xn = x.clamp(max=0).detach().requires_grad_(True)
    with torch.enable_grad():
        z = _affine(leaf, xp, w.clamp(min=0), None) + _affine(leaf, xn, w.clamp(max=0), None)
        s = R / _stabilize(z, cfg["epsilon"])
        cp, cn = torch.autograd.grad(z, (xp, xn), grad_outputs=s)
    return torch.where(x > 0, cp, cn)


def _relay_function():
    """Forward: the module's output unchanged.  Backward: the incoming relevance ``R``
    at the output is redistributed to the module's data inputs by its rule."""
    torch = torch_module()

    class Relay(torch.autograd.Function):
        @staticmethod
        def forward(ctx, spec, out, *inputs):
            ctx.spec = spec
            ctx.save_for_backward(*inputs)
            return out.clone()

        @staticmethod
        def backward(ctx, R):
            inputs = ctx.saved_tensors
            name, kind, leaf, cfg, ordinal = ctx.spec
            if cfg.get("switch") is not None and ordinal < cfg["switch"]:
                rel = _vjp(leaf, inputs, R)  # below the substituted top levels: the plain gradient
            elif cfg.get("switch") is not None and ordinal == cfg["switch"]:
                rel = (_zplus_signal(leaf, inputs[0], R, cfg),)  # lowest z+ layer: relevance -> signal
            elif kind == "pass":
                rel = (R,)
            elif kind == "linear" and cfg["input_rule"] == "zb" and name in cfg["bounds"]:
                low, high = cfg["bounds"][name]
                rel = (_rule_zb(leaf, inputs[0], R, cfg, low, high),)
            elif kind == "linear":
                rel = (_rule_zplus(leaf, inputs[0], R, cfg),)
            elif kind == "batchnorm":
                rel = (_rule_batchnorm(leaf, inputs[0], R, cfg),)
            else:  # pool, add
                rel = _rule_positive_linear(leaf, inputs, R, cfg)
            return (None, None) + tuple(rel)

    return Relay


def lrp_torch(model: OnnxModel):
    """A deep copy of :func:`full_torch` with BatchNorms folded and every rule-bearing
    leaf hooked to relay relevance; ``(module, plan, state, lock)``, kept as
    ``model.derived("lrp_torch", ...)``."""

    def build():
        net = copy.deepcopy(full_torch(model))
        plan = _lrp_plan(net)
        relay = _relay_function()
        state: dict = {"cfg": None}

        def hook_for(name, kind, ordinal):
            def hook(mod, args, out):
                cfg = state["cfg"]
                if cfg is None:  # plain forward
                    return out
                return relay.apply((name, kind, mod, cfg, ordinal), out, *args)
            return hook

        for ordinal, (name, kind) in enumerate(plan["kinds"].items()):  # graph (forward) order
            if kind != "structural":
                plan["leaves"][name].register_forward_hook(hook_for(name, kind, ordinal))
        plan["linear_ordinals"] = [i for i, k in enumerate(plan["kinds"].values()) if k == "linear"]
        return net, plan, state, threading.Lock()

    return model.derived("lrp_torch", build)


def default_bounds(model: OnnxModel) -> tuple[float, float] | None:
    """The zoo preprocessing's model-space range of pixel values 0..255, if ``model``
    is a zoo model with a matching input shape."""
    from smug.models.zoo import ZOO

    entry = ZOO.get(model.name)
    if entry is None:
        return None
    p = entry.preprocess
    if tuple(model.input_shape) != (1 if p.grayscale else 3, p.crop, p.crop):
        return None
    ends = sorted([(0.0 - p.offset) / p.scale, (255.0 - p.offset) / p.scale])
    return float(ends[0]), float(ends[1])


def _first_layer_inputs(net, first: list[str], t) -> dict:
    """The inputs of the layers ``first`` when ``net`` runs on ``t`` (hooks removed after)."""
    torch = torch_module()
    seen: dict = {}
    handles = [net.get_submodule(n).register_forward_pre_hook(
        lambda mod, args, n=n: seen.setdefault(n, args[0].detach())) for n in first]
    try:
        with torch.no_grad():
            net(t)
    finally:
        for h in handles:
            h.remove()
    return seen


@register("lrp_zplus")
@register("dtd_zb")
def lrp_zplus(
    model: OnnxModel, x: np.ndarray, target: int, input_rule: str = "zb", low=None, high=None,
    bias: bool = False, epsilon: float = 1e-6, levels: int | None = None,
) -> tuple[np.ndarray, dict]:
    """LRP z+ above, z^B (``input_rule="zb"``, default) or z+ (``"zplus"``) at the layers
    reading the input; relevance starts at the target logit; map = sum over channels.
    ``levels``: cascade substitution, see :func:`lrp_relevance`."""
    rel, info = lrp_relevance(model, x, target, input_rule, low, high, bias, epsilon, levels)
    return sum_channels(rel).astype(np.float32), info


def lrp_relevance(
    model: OnnxModel, x: np.ndarray, target: int, input_rule: str = "zb", low=None, high=None,
    bias: bool = False, epsilon: float = 1e-6, levels: int | None = None, signal: bool = False,
) -> tuple[np.ndarray, dict]:
    """The input relevance of :func:`lrp_zplus` with the input's shape (float64).

    ``levels`` (paper 004 Def. 3, N-level cascade substitution): only the top
    ``levels`` Linear/Conv layers (nearest the output) use the z+ rule (with the
    units between them); at the lowest of them the relevance turns into a signal
    ``r`` (``x * r`` = its z+ relevance) and every layer below passes the plain
    gradient; the result is ``x * r_0``.  ``levels=0`` is gradient x input (the
    backward pass starts from 1 at the target, not from the logit); ``levels`` =
    all Linear/Conv layers is z+ everywhere (it needs ``input_rule="zplus"``).
    ``signal=True`` (with ``levels``) returns ``r_0`` itself, Def. 3's ``r_0^N``."""
    if input_rule not in ("zb", "zplus"):
        raise ValueError(f"input_rule must be 'zb' or 'zplus', got '{input_rule}'")
    epsilon = float(epsilon)
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    torch = torch_module()
    net, plan, state, lock = lrp_torch(model)
    x = np.asarray(x, dtype=np.float32)
    info: dict = {"input_rule": input_rule, "bias": bool(bias), "epsilon": epsilon}
    cfg = {"input_rule": input_rule, "bias": bool(bias), "epsilon": epsilon, "bounds": {}}
    lin = plan["linear_ordinals"]
    levels = _check_levels(levels, len(lin))
    if levels is not None:
        if input_rule != "zplus":
            raise ValueError("cascade substitution (levels) uses the z+ rule at every layer: pass input_rule='zplus'")
        cfg["switch"] = lin[len(lin) - levels] if levels > 0 else math.inf
        info["levels"] = levels
    with lock:
        xt = model_input(net, x)
        if input_rule == "zb":
            if not plan["first"]:
                raise ValueError("the z^B rule needs a Linear/Conv layer reading the input; use input_rule='zplus'")
            if low is None and high is None:
                bounds = default_bounds(model)
                source = f"zoo preprocessing of '{model.name}'" if bounds else "input min/max"
                low, high = bounds if bounds else (float(x.min()), float(x.max()))
            elif low is None or high is None:
                raise ValueError("give both low and high (or neither, for the default bounds)")
            else:
                source = "given"
            lo = np.broadcast_to(np.asarray(low, dtype=np.float32), x.shape).copy()
            hi = np.broadcast_to(np.asarray(high, dtype=np.float32), x.shape).copy()
            if np.any(lo > hi):
                raise ValueError("the z^B bounds need low <= high")
            cap_lo = _first_layer_inputs(net, plan["first"], model_input(net, lo, requires_grad=False))
            cap_hi = _first_layer_inputs(net, plan["first"], model_input(net, hi, requires_grad=False))
            cfg["bounds"] = {n: (torch.minimum(cap_lo[n], cap_hi[n]), torch.maximum(cap_lo[n], cap_hi[n]))
                             for n in plan["first"]}
            info.update({
                "low": np.asarray(low).tolist(), "high": np.asarray(high).tolist(), "bounds_from": source,
                "input_in_bounds": bool(np.all((x >= lo) & (x <= hi))),
            })
        state["cfg"] = cfg
        try:
            out = net(xt)
            logit = out[0, target].detach()
            seed = torch.zeros_like(out)
            seed[0, target] = 1.0 if levels == 0 else logit
            (rel,) = torch.autograd.grad(out, xt, grad_outputs=seed)
        finally:
            state["cfg"] = None
    rel = rel[0].double().cpu().numpy()
    if levels is not None and not signal:
        rel = np.asarray(x, dtype=np.float64) * rel  # bottom process: x * r_0
    kinds = list(plan["kinds"].values())
    total, start = float(rel.sum()), float(logit)
    info.update({
        "first_layers": list(plan["first"]), "batchnorms_folded": plan["folded"],
        "rules": {k: kinds.count(k) for k in ("linear", "batchnorm", "pass", "pool", "add", "structural")},
        "relevance_start": start, "relevance_sum": total,
        "conservation_error": abs(total - start) / abs(start) if start != 0 else abs(total),
        "reduce": "sum over channels",
    })
    return rel, info
