"""A faster torch copy of an ONNX graph for gradients: convolutions (and their stride-1 adjoints)
run by oneDNN on CPU (the constant shape arithmetic is already folded by the normalisation of
:func:`~smug.models.torch_backend.convert`).

:func:`fast_convert` is what the IG tail (:meth:`~smug.models.runtime.OnnxModel.torch_tail`)
and the gradient baselines use; it falls back to the checked conversion whenever the
fast copy cannot be built or disagrees with it on a random probe.  The modules here are
picklable, so a converted copy can be cached on disk.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx

from smug.models.torch_backend import conversion_of, device, torch_module

torch = torch_module()  # this module is imported only where gradients are needed (torch on purpose)


def module_device(module):
    """Where a torch module's tensors live (the default device for an empty one)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return device()


class Stride1Conv(torch.autograd.Function):
    """oneDNN convolution whose input gradient is the oneDNN convolution of the output
    gradient with the flipped, group-transposed weights (the textbook adjoint)."""

    @staticmethod
    def forward(ctx, x, weight, bias, adjoint, padding, back_padding, groups):
        ctx.save_for_backward(adjoint)
        ctx.back_padding, ctx.groups = back_padding, groups
        return torch.mkldnn_convolution(x.contiguous(), weight, bias, padding, (1, 1), (1, 1), groups)

    @staticmethod
    def backward(ctx, grad):
        (adjoint,) = ctx.saved_tensors
        gx = torch.mkldnn_convolution(grad.contiguous(), adjoint, None, ctx.back_padding, (1, 1), (1, 1),
                                      ctx.groups)
        return gx, None, None, None, None, None, None


class OneDnnConv2d(torch.nn.Module):
    """One frozen ``Conv2d`` run by oneDNN on CPU (its own forward elsewhere)."""

    def __init__(self, conv):
        super().__init__()
        self.conv = conv
        w = conv.weight.detach()
        co, cig, kh, kw = w.shape
        g = conv.groups
        self.stride1 = (
            conv.stride == (1, 1) and conv.dilation == (1, 1) and not isinstance(conv.padding, str)
            and conv.padding[0] <= kh - 1 and conv.padding[1] <= kw - 1 and not conv.weight.requires_grad
            and (conv.bias is None or not conv.bias.requires_grad)
        )
        adjoint = w.reshape(g, co // g, cig, kh, kw).transpose(1, 2).reshape(cig * g, co // g, kh, kw)
        self.register_buffer("adjoint", adjoint.flip(2, 3).contiguous() if self.stride1 else None)
        self.back_padding = (kh - 1 - conv.padding[0], kw - 1 - conv.padding[1]) if self.stride1 else None

    def forward(self, x):
        c = self.conv
        if c.padding_mode != "zeros" or isinstance(c.padding, str) or x.device.type != "cpu":
            return c(x)
        if self.stride1:
            return Stride1Conv.apply(x, c.weight, c.bias, self.adjoint, c.padding, self.back_padding, c.groups)
        return torch.mkldnn_convolution(x.contiguous(), c.weight, c.bias, c.padding, c.stride, c.dilation, c.groups)


def onednn_convs(module) -> int:
    """On CPU, run every ``Conv2d`` of ``module`` (frozen weights) through oneDNN
    (``torch.mkldnn_convolution``).  torch's own dispatch sends 1x1 convolutions of
    small batches on one thread to its slower im2col path, forward and backward.  For
    a stride-1 convolution the input gradient is itself computed as a oneDNN
    convolution of the output gradient with the spatially flipped, group-transposed
    weights (padding ``k - 1 - p``), the textbook adjoint; weights get no gradient.
    Same arithmetic, other summation order.  Returns how many were switched."""
    if module_device(module).type != "cpu" or not torch.backends.mkldnn.is_available():
        return 0
    count = 0
    for name, m in list(module.named_modules()):
        if type(m) is torch.nn.Conv2d:
            parent, _, leaf = name.rpartition(".")
            setattr(module.get_submodule(parent) if parent else module, leaf, OneDnnConv2d(m))
            count += 1
    return count


def fast_convert(proto: onnx.ModelProto, reference, probe: list[np.ndarray]):
    """A copy of ``reference`` (``proto`` converted by :func:`~smug.models.torch_backend.convert`,
    which already reads the normalised graph) with :func:`onednn_convs`, if it agrees with
    ``reference`` on the ``probe`` inputs (rtol 1e-4); else ``reference`` itself (so the answer
    never depends on the speed-up).  ``proto`` is kept in the signature for callers."""
    try:
        candidate = copy.deepcopy(reference)
        if not onednn_convs(candidate):
            return reference
        candidate.smug_conversion = conversion_of(reference)  # torch.fx's deepcopy leaves it out
        with torch.no_grad():
            ins = [torch.as_tensor(p, device=module_device(reference)) for p in probe]
            a = candidate(*ins).double().cpu().numpy()
            b = reference(*ins).double().cpu().numpy()
        if a.shape == b.shape and np.allclose(a, b, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(b).max())):
            return candidate
    except Exception:  # any trouble with the speed-up: the checked conversion is always right
        pass
    return reference
