"""Gradient-based baselines on the torch copy of an ONNX model (issue 5).

``F_c`` is the target's logit.  Methods (registered in :mod:`.attribution`):

* ``gradient``: Simonyan et al., paper 000 Eq. 1: ``w = dF_c/dx``; map ``max_c |w|``.
* ``integrated_gradients``: Sundararajan et al. (paper 003 Eq. 1) in pixel space,
  zero baseline, midpoint rule; map = per-pixel sum over channels (signed).
* ``gradcam``: paper 000 Eqs. 2-3: ``ReLU(sum_k alpha_k A^k)`` with ``alpha_k`` the
  spatial mean of ``dF_c/dA^k``, upsampled bilinearly to the input size.
* ``guided_backprop``: paper 004 Eq. 6: at every ReLU-like unit (ReLU, ReLU6,
  Clip(0, max)) only positive gradients pass back; map ``max_c |r_0|``.

Every method works on a torch module converted from a copy of the ONNX graph.
``gradient`` and ``integrated_gradients`` use :func:`fast_torch`, the same function
with its constant shape arithmetic folded away; Guided Backprop hooks a deep copy of
:func:`~smug.baselines.attribution.full_torch`.  Grad-CAM runs the network up to its
layer on onnxruntime and only the rest (``OnnxModel.torch_tail``) in torch; a layer
with no ONNX tensor of its own (a module inside a converted node) falls back to a
forward hook on ``full_torch``, held only for the duration of a call.

``gradient`` and ``gradcam`` also have batched forms
(:func:`~smug.baselines.attribution.attribute_batch`,
``xs`` of shape (N, *input_shape)) that treat ``batch`` inputs per pass.
"""

from __future__ import annotations

import copy

import numpy as np

from smug.baselines.attribution import full_torch, register, register_batch
from smug.baselines.budget import Ticker
from smug.models.runtime import OnnxModel
from smug.models.torch_backend import torch_module


# ---- shared helpers ----------------------------------------------------------
# module_device and onednn_convs live in smug.models.torch_fast (the IG tail
# uses them too); imported here lazily by the functions that need torch.


def module_device(module):
    """Where a torch module's tensors live (the default device for an empty one)."""
    from smug.models.torch_fast import module_device as where

    return where(module)


def onednn_convs(module) -> int:
    """:func:`smug.models.torch_fast.onednn_convs` (convolutions run by oneDNN on CPU)."""
    from smug.models.torch_fast import onednn_convs as switch

    return switch(module)


def fast_torch(model: OnnxModel):
    """The function of :func:`full_torch` (converted from the normalised graph), its
    convolutions run by oneDNN on CPU (:func:`onednn_convs`).  On Lite0 the ~200
    modules of run-time pad arithmetic disappear and a forward + backward pass is
    cheaper (docs/benchmarks.md, section baselines).  Kept as
    ``model.derived("fast_torch", ...)``.  Checked once against ``full_torch`` on a
    random input; on any failure or disagreement ``full_torch`` itself is used."""
    return model.derived("fast_torch",
                         lambda: model.torch_module_cached("fast_torch", lambda: _build_fast_torch(model)))


def _build_fast_torch(model: OnnxModel):
    from smug.models.torch_fast import fast_convert

    from smug.models.torch_backend import chunked

    reference = full_torch(model)
    probe = np.random.default_rng(0).normal(size=(model.fixed_batch or 2, *model.input_shape)).astype(np.float32)
    return chunked(fast_convert(model.proto, reference, [probe]), model.fixed_batch)


def model_input(module, x: np.ndarray, requires_grad: bool = True):
    """One model-space input ``x`` as a (1, *shape) float32 batch tensor on ``module``'s
    device (:func:`module_device`), tracking gradients unless ``requires_grad=False``.
    Shared by the gradient, modified-backprop and cascade code."""
    torch = torch_module()
    t = torch.as_tensor(np.asarray(x, dtype=np.float32), device=module_device(module))[None]
    return t.requires_grad_(requires_grad)


def input_gradient(module, x: np.ndarray, target: int) -> np.ndarray:
    """``dF_target/dx`` at one input ``x`` through the torch ``module`` (any of
    :func:`full_torch`, :func:`fast_torch`, :func:`guided_torch`'s module, ...), as a
    float64 array of ``x``'s shape."""
    torch = torch_module()
    xt = model_input(module, x)
    (grad,) = torch.autograd.grad(module(xt)[:, target].sum(), xt)
    return grad[0].double().cpu().numpy()


def _is_image(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3


def _absmax_channels(g: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) by ``max_c |g|``; other shapes: ``|g|``."""
    return np.abs(g).max(axis=0) if _is_image(g.shape) else np.abs(g)


def sum_channels(a: np.ndarray) -> np.ndarray:
    """An attribution's map: (C, H, W) -> (H, W) by the signed sum over channels;
    other shapes unchanged.  The reduction of input-times-signal methods (IG,
    RectGrad, LRP)."""
    return a.sum(axis=0) if _is_image(a.shape) else a


def _check_batch(batch: int) -> int:
    if int(batch) < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    return int(batch)


def _picked(logits, targets, start: int):
    """``logits[i, t_i]`` for the rows of one chunk and the classes used: the given
    ``targets[start:start + len]``, or each row's argmax when ``targets`` is None."""
    torch = torch_module()
    if targets is None:
        t = logits.detach().argmax(dim=1)
    else:
        t = torch.as_tensor(np.asarray(targets[start : start + len(logits)]), device=logits.device)
    return logits.gather(1, t[:, None].long())[:, 0], t.cpu().numpy()


# ---- Simonyan gradient -------------------------------------------------------
@register("gradient")
def gradient(model: OnnxModel, x: np.ndarray, target: int) -> tuple[np.ndarray, dict]:
    """Paper 000 Eq. 1: ``M_ij = max_c |dF_c/dx_{c,i,j}|``."""
    maps, _, infos = gradient_batch(model, np.asarray(x)[None], np.array([target]))
    return maps[0], infos[0]


@register_batch("gradient")
def gradient_batch(model: OnnxModel, xs: np.ndarray, targets=None, batch: int = 4):
    """Eq. 1 for each input of ``xs`` (N, *shape), ``batch`` inputs per forward and
    backward pass (the inputs do not interact: the sum of the picked logits has each
    input's own gradient; 4 per pass was the cheapest per input on one CPU thread
    here).  ``targets`` None: each input's argmax on this forward."""
    batch = _check_batch(batch)
    torch = torch_module()
    net = fast_torch(model)
    maps, used = [], []
    for i in range(0, len(xs), batch):
        xt = torch.as_tensor(np.asarray(xs[i : i + batch], dtype=np.float32), device=module_device(net))
        xt.requires_grad_(True)
        score, t = _picked(net(xt), targets, i)
        (grad,) = torch.autograd.grad(score.sum(), xt)
        g = grad.abs()
        g = g.amax(dim=1) if g.dim() == 4 else g
        maps += list(g.cpu().numpy().astype(np.float32))
        used += list(t)
    return maps, used, [{"reduce": "max |.| over channels", "batch": batch} for _ in maps]


# ---- Integrated Gradients ----------------------------------------------------
@register("integrated_gradients")
def integrated_gradients(
    model: OnnxModel, x: np.ndarray, target: int, steps: int = 64, batch: int = 16
) -> tuple[np.ndarray, dict]:
    """``IG_i = x_i * (1/m) sum_k dF_c/dx_i(alpha_k x)``, ``alpha_k = (k + 1/2)/m`` (zero
    baseline).  Completeness: ``sum IG ~ F(x) - F(0)``, reported in the info.  Each batch takes
    every ``m / batch``-th point of the path (a strided share of it), so that the batches run when
    the call's deadline stops the loop still span the whole path: the map is then their mean
    (``steps_run``, ``stopped_at_deadline`` in the info; the completeness error says how good)."""
    if int(steps) < 1 or int(batch) < 1:
        raise ValueError("integrated_gradients needs steps >= 1 and batch >= 1")
    steps, batch = int(steps), int(batch)
    torch = torch_module()
    net = fast_torch(model)
    xt = model_input(net, x, requires_grad=False)
    view = (-1,) + (1,) * (xt.dim() - 1)
    n_batches = -(-steps // batch)
    alphas = ((np.arange(steps) + 0.5) / steps)[np.argsort(np.arange(steps) % n_batches, kind="stable")]
    total = torch.zeros_like(xt, dtype=torch.float64)
    ticker = Ticker("integrated_gradients", steps)
    for i in range(0, steps, batch):
        al = torch.as_tensor(alphas[i : i + batch], dtype=torch.float32, device=xt.device).view(view)
        z = (al * xt).requires_grad_(True)
        (grad,) = torch.autograd.grad(net(z)[:, target].sum(), z)
        total += grad.double().sum(0, keepdim=True)
        if not ticker.tick(len(al)):
            break
    attribution = (xt.double() * total / ticker.done)[0].cpu().numpy()
    with torch.no_grad():
        f = net(torch.cat([xt, torch.zeros_like(xt)]))[:, target].double().cpu().numpy()
    gap = float(f[0] - f[1])
    total_attr = float(attribution.sum())
    err = abs(total_attr - gap) / abs(gap) if gap != 0 else abs(total_attr)
    info = {
        "steps": steps, "batch": batch, "baseline": 0.0, "rule": "midpoint",
        "reduce": "sum over channels", "f_input": float(f[0]), "f_baseline": float(f[1]),
        "attribution_sum": total_attr, "completeness_error": float(err), "steps_run": ticker.done,
        "stopped_at_deadline": ticker.stopped,
    }
    return sum_channels(attribution).astype(np.float32), info


# ---- Grad-CAM ----------------------------------------------------------------
def _conv_types():
    nn = torch_module().nn
    return (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def last_conv(module) -> str:
    """Name of the last convolution executed by ``module`` (fx order when known)."""
    convs = _conv_types()
    names = dict(module.named_modules())
    order = []
    graph = getattr(module, "graph", None)
    if graph is not None:
        for node in graph.nodes:
            if node.op == "call_module":
                order.append(str(node.target))
                order += [f"{node.target}.{n}" for n, _ in names[str(node.target)].named_modules() if n]
    else:
        order = list(names)
    found = [n for n in order if isinstance(names.get(n), convs)]
    if not found:
        raise ValueError("gradcam needs a convolution layer and the model has none (pass layer=NAME)")
    return found[-1]


def _node_outputs(model: OnnxModel) -> dict[str, tuple[str, ...]]:
    """onnx2torch's module name of each ONNX node -> the node's output tensors (the
    names :func:`full_torch`'s top-level modules carry), kept as
    ``model.derived("node_outputs", ...)``."""

    def build():
        from onnx2torch.onnx_graph import OnnxGraph

        graph = OnnxGraph(model.proto.graph)  # reads the graph, changes nothing
        return {k: tuple(v.output_values) for k, v in graph.nodes.items()}

    return model.derived("node_outputs", build)


def layer_tensor(model: OnnxModel, net, name: str) -> str | None:
    """The ONNX tensor that module ``name`` of ``net`` (:func:`full_torch`) outputs: its
    node's only output, for a top-level module or the last module of a converted
    ``Sequential`` (e.g. the Conv after an explicit pad); None when the module's output
    is internal to a node."""
    nn = torch_module().nn
    top, *rest = name.split(".")
    outs = _node_outputs(model).get(top)
    if not outs or len(outs) != 1:
        return None
    mod = net.get_submodule(top)
    for part in rest:
        if not isinstance(mod, nn.Sequential) or part != str(len(mod) - 1):
            return None
        mod = mod[int(part)]
    return outs[0]


def attention_after_last_conv(model: OnnxModel) -> str | None:
    """The name of the first attention Softmax (one whose output is not the logits) after the
    graph's last Conv, or None.  Grad-CAM weighs the last convolution's spatial maps by their
    pooled gradients (paper 000 Eq. 2); in a vision transformer that convolution is the patch
    embedding and the decision is made by attention over tokens, so Grad-CAM does not apply."""
    nodes = list(model.proto.graph.node)
    last = max((i for i, n in enumerate(nodes) if n.op_type == "Conv"), default=None)
    if last is None:
        return None
    return next((n.name or n.output[0] for n in nodes[last + 1:]
                 if n.op_type == "Softmax" and n.output[0] != model.output_name), None)


def _gradcam_layer(model: OnnxModel, layer: str | None):
    if not _is_image(tuple(model.input_shape)):
        raise ValueError(f"gradcam needs an image input (C, H, W); this model takes {model.input_shape}")
    attention = attention_after_last_conv(model) if layer is None else None
    if attention is not None:
        raise ValueError(f"gradcam does not apply to this model: its last convolution is followed by attention "
                         f"({attention}), as in a vision transformer; Grad-CAM needs a convolutional network")
    net = full_torch(model)
    modules = dict(net.named_modules())
    if layer is None and not any(isinstance(m, _conv_types()) for m in modules.values()):
        # a torch copy without convolution modules (smug's evaluator of the graph): the last Conv node
        convs = [n for n in model.proto.graph.node if n.op_type == "Conv"]
        if convs:
            return net, convs[-1].name or convs[-1].output[0], None, convs[-1].output[0]
    name = last_conv(net) if layer is None else str(layer)
    if name not in modules or not name:
        convs = [n for n, m in modules.items() if isinstance(m, _conv_types())]
        raise ValueError(f"unknown layer '{name}': e.g. one of the convolutions {convs[-5:]}")
    return net, name, modules[name], layer_tensor(model, net, name)


def _not_a_map(name: str, shapes) -> ValueError:
    return ValueError(f"gradcam needs one (N, C, h, w) output at layer '{name}', got {shapes}")


def _cam(act, grad, size):
    """Paper 000 Eqs. 2-3 for a batch: ``ReLU(sum_k alpha_k A^k)``, ``alpha_k`` the spatial
    mean of ``dF_c/dA^k`` (Z = h * w), upsampled bilinearly (``align_corners=False``)."""
    torch = torch_module()
    alpha = grad.mean(dim=(2, 3), keepdim=True)  # Eq. 2
    cam = torch.relu((alpha * act).sum(dim=1, keepdim=True))  # Eq. 3
    return torch.nn.functional.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]


@register("gradcam")
def gradcam(model: OnnxModel, x: np.ndarray, target: int, layer: str | None = None) -> tuple[np.ndarray, dict]:
    """Paper 000 Eqs. 2-3 at ``layer`` (default: the last Conv's output), upsampled
    bilinearly (``align_corners=False``) to the input's (H, W)."""
    maps, _, infos = gradcam_batch(model, np.asarray(x)[None], np.array([target]), layer=layer)
    return maps[0], infos[0]


@register_batch("gradcam")
def gradcam_batch(model: OnnxModel, xs: np.ndarray, targets=None, layer: str | None = None, batch: int = 16):
    """Grad-CAM for each input of ``xs``, ``batch`` inputs per pass.  The activations
    ``A`` come from onnxruntime (``OnnxModel.tensors``); ``dF_c/dA`` from the torch copy
    of the graph after the layer only (``OnnxModel.torch_tail``).  A layer whose output
    is no ONNX tensor is read by a forward hook on :func:`full_torch` instead."""
    batch = _check_batch(batch)
    torch = torch_module()
    net, name, module, tensor = _gradcam_layer(model, layer)
    size = tuple(model.input_shape[1:])
    maps, used, shape = [], [], None
    for i in range(0, len(xs), batch):
        chunk = np.asarray(xs[i : i + batch], dtype=np.float32)
        if tensor is not None:
            act = model.tensors(chunk, [tensor])[tensor]
            if act.ndim != 4:
                raise _not_a_map(name, [act.shape[1:]])
            tail = model.torch_tail(tensor)
            dev = module_device(tail)
            act = torch.as_tensor(act, device=dev).requires_grad_(True)
            logits = tail(act, torch.as_tensor(chunk, device=dev))
        else:
            seen = []
            handle = module.register_forward_hook(lambda mod, args, out: seen.append(out))
            try:
                logits = net(model_input(net, chunk, requires_grad=True)[0])
            finally:
                handle.remove()
            if len(seen) != 1 or not torch.is_tensor(seen[0]) or seen[0].dim() != 4:
                raise _not_a_map(name, [tuple(t.shape) if torch.is_tensor(t) else type(t).__name__ for t in seen])
            act = seen[0]
        score, t = _picked(logits, targets, i)
        (grad,) = torch.autograd.grad(score.sum(), act)
        maps += list(_cam(act, grad, size).detach().cpu().numpy().astype(np.float32))
        used += list(t)
        shape = list(act.shape[1:])
    info = {"layer": name, "layer_shape": shape, "upsample": "bilinear",
            "activations": "onnxruntime" if tensor is not None else "torch hook"}
    return maps, used, [dict(info) for _ in maps]


# ---- Guided Backprop ---------------------------------------------------------
def relu_like(m) -> bool:
    """Whether torch module ``m`` is a ReLU-like unit of paper 004: ReLU, ReLU6 and
    Clip(0, max) (``Hardtanh(0, max)``, onnx2torch's OnnxClip with ``min_val == 0``).  The units
    Guided Backprop, RectGrad and cascade substitution hook."""
    nn = torch_module().nn
    if isinstance(m, nn.ReLU) or (isinstance(m, nn.Hardtanh) and m.min_val == 0):
        return True
    return type(m).__name__ == "OnnxClip" and getattr(m, "min_val", None) == 0


def _positive_grad():
    """Identity forward, ``max(0, grad)`` backward."""
    torch = torch_module()

    class PositiveGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):
            return t.view_as(t)

        @staticmethod
        def backward(ctx, g):
            return g.clamp(min=0)

    return PositiveGrad


def guided_torch(model: OnnxModel):
    """A deep copy of :func:`full_torch` whose ReLU-like outputs pass only positive
    gradients back; the unit's own derivative then masks by its forward input, so
    ``r_in = 1[unit active] * max(0, r_out)`` (paper 004 Eq. 6).  ``(module, units)``,
    kept as ``model.derived("guided_torch", ...)``; :func:`full_torch` itself is left
    untouched."""

    def build():
        guided = copy.deepcopy(full_torch(model))
        fn = _positive_grad()
        units = [m for m in guided.modules() if relu_like(m)]
        for m in units:
            m.register_forward_hook(lambda mod, args, out: fn.apply(out))
        return guided, len(units)

    return model.derived("guided_torch", build)


@register("guided_backprop")
def guided_backprop(model: OnnxModel, x: np.ndarray, target: int) -> tuple[np.ndarray, dict]:
    """Paper 004 Eq. 6 back to the input; map ``max_c |r_0|``."""
    net, units = guided_torch(model)
    g = input_gradient(net, x, target)
    return _absmax_channels(g).astype(np.float32), {"guided_units": units, "reduce": "max |.| over channels"}
