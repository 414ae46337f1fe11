"""The gradients of a model exported from a torch module come from the module's own torch code.

:func:`~smug.models.module_export.exported_model` gives a :class:`ModuleModel` for an ONNX file that
:func:`~smug.models.module_export.module_onnx` exported in this process.  It is an :class:`~smug.models.runtime.OnnxModel` (onnxruntime, the
encoders and the certificate read the file) whose torch copies -- ``full_torch``, ``fast_torch`` and
the tails from a tensor (:meth:`~smug.models.runtime.OnnxModel.derived`'s keys) -- are the module's
twin (:func:`~smug.models.module_export.twin_of`) instead of a conversion of the ONNX graph:

* the whole model: the twin itself, checked against onnxruntime on a probe like every conversion
  (:data:`~smug.models.torch_backend.TOLERANCE`);
* a tail from ONNX tensor ``t`` (IG on the first layer, Grad-CAM): the submodule of the twin whose
  output is ``t`` (found by value on a probe, called once per forward pass) has its output replaced by
  the given activation for the duration of a call (a forward hook, removed after it).

Anything that does not agree (no submodule outputs ``t``, logits off) falls back to the conversion,
and :meth:`~smug.models.runtime.OnnxModel.gradient_paths` says which path ran (:data:`PATH`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from smug.models.runtime import OnnxModel
from smug.models.torch_backend import TOLERANCE, chunked, torch_module

torch = torch_module()  # imported only when a torch module was exported (torch on purpose)

#: the gradient path of a model explained from its torch module
PATH = "torch module (no ONNX round trip)"


class DirectTail(torch.nn.Module):
    """``tail(activation, model_input)``: ``net`` run on ``model_input`` with the output of its
    submodule ``layer`` replaced by ``activation`` (what the tail of an ONNX graph from that tensor computes)."""

    def __init__(self, net, layer: str):
        super().__init__()
        self.net, self.layer = net, layer

    def forward(self, activation, model_input):
        handle = self.net.get_submodule(self.layer).register_forward_hook(lambda mod, args, out: activation.clone())
        try:
            return self.net(model_input)
        finally:
            handle.remove()


@dataclass
class ModuleModel(OnnxModel):
    """An ONNX model exported from a torch module whose twin computes its gradients (module docstring)."""

    twin: object = field(default=None, repr=False, compare=False)

    @classmethod
    def with_twin(cls, path, twin) -> "ModuleModel":
        """The ONNX file at ``path`` (:meth:`OnnxModel.load`) with the module's ``twin``."""
        model = cls.load(path)
        model.twin = twin
        return model

    def derived(self, key, build):
        """:meth:`OnnxModel.derived`, except that the torch copies are the twin where it agrees, and that
        there is no numpy tail (``("dense_tail", t)``, :mod:`smug.encoders.dense_tail`): a module's
        gradients are its own torch code's."""
        if self.twin is not None and isinstance(key, tuple) and key[0] == "dense_tail":
            return None
        if self.twin is not None and (key in ("full_torch", "fast_torch") or (isinstance(key, tuple)
                                                                              and key[0] == "tail")):
            direct = super().derived(("direct", key), lambda: self._direct(key))
            if direct is not None:
                return super().derived(key, lambda: direct)
        return super().derived(key, build)

    def _probe(self) -> np.ndarray:
        return np.random.default_rng(0).normal(size=(2, *self.input_shape)).astype(np.float32)

    def _agrees(self, module, *args) -> float | None:
        """``module(*args)``'s max abs logit error against onnxruntime's on the probe, or None when it
        is beyond :data:`TOLERANCE` (relative to the largest logit, at least 1)."""
        expected = self.logits(self._probe()).astype(np.float64)
        with torch.no_grad():
            got = module(*(torch.as_tensor(a, device=_device(self.twin)) for a in args)).double().cpu().numpy()
        if got.shape != expected.shape:
            return None
        error = float(np.abs(got - expected).max())
        return error if error <= TOLERANCE * max(1.0, float(np.abs(expected).max())) else None

    def _direct(self, key):
        if key == "full_torch":
            error = self._agrees(self.twin, self._probe())
            if error is None:
                return None
            self.twin.smug_conversion = {"path": PATH, "probe_error": error}
            return self.twin
        full = super().derived(("direct", "full_torch"), lambda: self._direct("full_torch"))
        if full is None:
            return None
        if key == "fast_torch":
            from smug.models.torch_fast import fast_convert

            return chunked(fast_convert(self.proto, full, [self._probe()]), None)
        return self._tail(full, key[1])

    def _tail(self, net, start: str):
        """:class:`DirectTail` from the submodule of ``net`` that outputs tensor ``start``, or None."""
        x = self._probe()
        want = self.tensors(x, [start])[start]
        layer = _output_of(net, torch.as_tensor(x, device=_device(net)), want)
        if layer is None:
            return None
        tail = DirectTail(net, layer)
        error = self._agrees(tail, want, x)
        if error is None:
            return None
        tail.smug_conversion = {"path": PATH, "probe_error": error, "layer": layer}
        return tail


def _device(module):
    from smug.models.torch_fast import module_device

    return module_device(module)


def _output_of(net, x, want: np.ndarray) -> str | None:
    """The first submodule of ``net`` (in the order their forward passes end) that runs once on ``x``
    and outputs ``want`` (float32 rounding allowed), or None."""
    calls: dict[str, int] = {}
    found: list[str] = []
    scale = 1e-5 * max(1.0, float(np.abs(want).max()))

    def record(name):
        def hook(mod, args, out):
            calls[name] = calls.get(name, 0) + 1
            if torch.is_tensor(out) and tuple(out.shape) == want.shape and name not in found:
                if np.allclose(out.detach().double().cpu().numpy(), want, rtol=1e-4, atol=scale):
                    found.append(name)
        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in net.named_modules() if name]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return next((name for name in found if calls[name] == 1), None)
