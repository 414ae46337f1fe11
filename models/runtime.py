"""An ONNX classifier behind one small interface: onnxruntime forward passes
(CUDA provider when present), intermediate tensors on demand, and a torch copy
(checked against onnxruntime: :func:`smug.models.torch_backend.convert`) for gradients.
The user's model is never modified in place: every derived graph is built on a copy."""

from __future__ import annotations

import copy
import hashlib
import os
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import numpy as np
import onnx

from smug.models.errors import ModelError  # noqa: F401 (re-exported)
from smug.models.ort import fixed_batch, open_session

T = TypeVar("T")

#: names the way torch copies are built (smug.models.torch_backend.convert) in their disk-cache key
CONVERSION_SCHEME = "checked6"


@dataclass
class OnnxModel:
    """A loaded ONNX classifier: one input (batch first), one output of logits.

    Artefacts computed from the graph (onnxruntime sessions with extra outputs, torch
    conversions, graph indexes) are kept per wrapper through :meth:`derived`; none of
    them changes ``proto``."""

    proto: onnx.ModelProto
    name: str = "model"
    _derived: dict = field(default_factory=dict, repr=False, compare=False)
    _derived_lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @classmethod
    def load(cls, path: str | os.PathLike, name: str | None = None) -> "OnnxModel":
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        try:
            proto = onnx.load(str(path))
            onnx.checker.check_model(proto)
        except Exception as exc:  # onnx raises several unrelated types
            raise ModelError(f"{path} is not a valid ONNX model: {exc}") from None
        return cls.from_proto(proto, name or path.stem)

    @classmethod
    def from_proto(cls, proto: onnx.ModelProto, name: str = "model") -> "OnnxModel":
        model = cls(proto=proto, name=name)
        model.input_shape  # validate early: a declared shape is required
        return model

    # ---- derived artefacts -------------------------------------------------
    def derived(self, key: Hashable, build: Callable[[], T]) -> T:
        """The artefact stored under ``key`` for this wrapper, built by ``build()`` on
        first use and returned unchanged afterwards.

        Thread-safe: one (re-entrant) lock per wrapper is held while looking up and
        building, so ``build`` runs at most once per key even under concurrent calls, and
        it may itself call :meth:`derived` for another key (e.g. a guided copy built from
        the plain torch conversion).  If ``build`` raises, nothing is stored and the next
        call tries again.  ``build`` must work on a copy of ``proto``, never on ``proto``
        itself; the artefact belongs to this wrapper and is dropped with it.

        Keys in use: ``("tensors", names)``, ``("tail", start)`` and ``("disk", name)`` here;
        ``"full_torch"``, ``"fast_torch"``, ``"guided_torch"``, ``"node_outputs"``,
        ``"rectgrad_torch"``, ``"lrp_torch"``, ``"text_layers"`` (smug.baselines),
        ``"activation_torch"`` (smug.metrics.cascade), ``"first_layer"`` (smug.pipeline),
        ``"network_layers"`` (smug.encoders.network) and ``("dense_tail", start)`` (smug.encoders.dense_tail)."""
        with self._derived_lock:
            if key not in self._derived:
                self._derived[key] = build()
            return self._derived[key]

    def derived_on_disk(self, name: str, build: Callable[[], T], save: Callable[[T, Path], None],
                        load: Callable[[Path], T]) -> T:
        """:meth:`derived` under ``("disk", name)``, also kept on disk as
        ``cache_dir()/derived/<sha256 of the model>/<name>`` so that a new process loads it
        instead of building it again (next to the ONNX export cache).  ``name`` must say
        everything the artefact depends on besides the model's bytes (library versions, the
        tensor it starts from).  A file that cannot be read is rebuilt and replaced; a cache
        that cannot be written is skipped (the artefact is still returned)."""

        def cached():
            from smug.common import cache_dir

            path = cache_dir() / "derived" / self.sha256 / name
            if path.is_file():
                try:
                    return load(path)
                except Exception:  # a stale or half-written file (other versions, a full disk): rebuild it
                    pass
            value = build()
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                save(value, tmp)
                os.replace(tmp, path)
            except OSError:
                tmp.unlink(missing_ok=True)
            return value

        return self.derived(("disk", name), cached)

    # ---- graph facts -------------------------------------------------------
    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.proto.SerializeToString()).hexdigest()

    @cached_property
    def _graph_input(self) -> onnx.ValueInfoProto:
        inits = {i.name for i in self.proto.graph.initializer}
        inputs = [i for i in self.proto.graph.input if i.name not in inits]
        if len(inputs) != 1:
            raise ModelError(f"expected one model input, found {len(inputs)}")
        return inputs[0]

    @property
    def input_name(self) -> str:
        return self._graph_input.name

    @property
    def output_name(self) -> str:
        return self.proto.graph.output[0].name

    @cached_property
    def input_shape(self) -> tuple[int, ...]:
        """The declared input shape without the batch dimension."""
        dims = self._graph_input.type.tensor_type.shape.dim
        if len(dims) < 2:
            raise ModelError("the model input must have a batch dimension and a declared shape")
        shape = []
        for d in dims[1:]:
            if not d.HasField("dim_value") or d.dim_value <= 0:
                raise ModelError(
                    f"input '{self.input_name}' has no declared size for a non-batch dimension"
                )
            shape.append(int(d.dim_value))
        return tuple(shape)

    @cached_property
    def n_classes(self) -> int:
        """The number of logits (the output's declared last dimension, else one forward pass)."""
        dims = self.proto.graph.output[0].type.tensor_type.shape.dim
        if dims and dims[-1].HasField("dim_value") and dims[-1].dim_value > 0:
            return int(dims[-1].dim_value)
        return int(self.logits(np.zeros((1, *self.input_shape), np.float32)).shape[-1])

    # ---- onnxruntime -------------------------------------------------------
    @cached_property
    def session(self):
        return open_session(self.proto)

    @cached_property
    def fixed_batch(self) -> int | None:
        """The batch size the graph declares (None: a dynamic batch dimension)."""
        return fixed_batch(self.proto)

    def _runs(self, session, names: list[str], x: np.ndarray, batch_size: int) -> list[np.ndarray]:
        """``session``'s ``names`` for the inputs ``x``, ``batch_size`` inputs a run -- or, for a graph
        with a fixed batch size, exactly that many a run (a short last run padded with zeros, its
        outputs cut back).  Outputs are joined along their first axis (a batch of one: as they are,
        so a tensor without a batch axis, such as a shape, comes back whole)."""
        size = batch_size if self.fixed_batch is None else self.fixed_batch
        outs = []
        for i in range(0, len(x), size):
            chunk, n = x[i : i + size], len(x[i : i + size])
            if n < size and self.fixed_batch is not None:
                chunk = np.concatenate([chunk, np.zeros((size - n, *chunk.shape[1:]), chunk.dtype)])
            values = session.run(names, {self.input_name: chunk})
            outs.append([v[:n] for v in values] if len(chunk) > n else values)
        if len(outs) == 1:
            return outs[0]
        return [np.concatenate([o[k] for o in outs], axis=0) for k in range(len(names))]

    def logits(self, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Logits for a batch of inputs shaped (N, *input_shape), ``batch_size`` a run when the
        model's batch dimension is dynamic (its fixed batch size a run otherwise)."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape[1:] != self.input_shape:
            raise ModelError(f"input shape {x.shape[1:]} does not match the model's {self.input_shape}")
        return self._runs(self.session, [self.output_name], x, batch_size)[0]

    def checked_input(self, x: np.ndarray, target: int | None = None) -> tuple[np.ndarray, int]:
        """One model-space input (checked: shape, finite) and the class to explain
        (default: the prediction; a given one must be a valid class index)."""
        from smug.models.preprocess import InputError, check_array

        x = check_array(x, self.input_shape)
        logits = self.logits(x[None])[0]
        if target is None:
            return x, int(logits.argmax())
        if not 0 <= int(target) < len(logits):
            raise InputError(f"target {target} is not one of the model's {len(logits)} classes")
        return x, int(target)

    def tensors(self, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
        """Values of intermediate tensors for input batch ``x`` (graph copied, not changed)."""

        def build():
            proto = copy.deepcopy(self.proto)
            known = {o.name for o in proto.graph.output}
            for n in names:
                if n not in known:
                    proto.graph.output.append(onnx.ValueInfoProto(name=n))
            return open_session(proto)

        sess = self.derived(("tensors", tuple(names)), build)
        x = np.asarray(x, dtype=np.float32)
        return dict(zip(names, self._runs(sess, list(names), x, max(1, len(x)))))

    # ---- torch (gradients) -------------------------------------------------
    def torch_tail(self, start: str):
        """The sub-network from tensor ``start`` to the logits, as a torch module
        called ``tail(activation, model_input)`` (the model input is passed along for
        graphs that read only its shape, such as a dynamic-batch Reshape).  It is the checked
        conversion of :func:`~smug.models.torch_backend.convert` (made fast by
        :func:`~smug.models.torch_fast.fast_convert` when that agrees), cached on disk
        (:meth:`torch_module_cached`)."""

        def build():
            from onnx.utils import Extractor

            from smug.models.torch_backend import chunked, convert
            from smug.models.torch_fast import fast_convert

            inferred = onnx.shape_inference.infer_shapes(self.proto)  # returns a new proto
            sub = Extractor(inferred).extract_model([start, self.input_name], [self.output_name])
            batch = self.fixed_batch
            x = np.random.default_rng(0).normal(size=(batch or 2, *self.input_shape)).astype(np.float32)
            probe = [np.asarray(self.tensors(x, [start])[start], dtype=np.float32), x]
            return chunked(fast_convert(sub, convert(sub, probe, batch, evaluator_first=True), probe), batch)

        return self.derived(("tail", start), lambda: self.torch_module_cached(f"tail-{start}", build))

    def gradient_paths(self, x: np.ndarray) -> dict[str, dict]:
        """How each torch copy this wrapper has built so far computes gradients, checked on the
        model input ``x``: ``{"whole model" | "from <tensor>": {"path": ..., "max_abs_logit_error": ...}}``,
        the path as :func:`~smug.models.torch_backend.convert` chose it and the error against
        onnxruntime's logits on ``x`` (empty when no torch copy was built)."""
        with self._derived_lock:
            built = {k: v for k, v in self._derived.items()
                     if k in ("fast_torch", "full_torch") or (isinstance(k, tuple) and k[0] == "tail")}
        if not built:
            return {}
        from smug.models.torch_backend import conversion_of, torch_module
        from smug.models.torch_fast import module_device

        torch = torch_module()
        xb = np.asarray(x, dtype=np.float32)[None]
        expected = self.logits(xb).astype(np.float64)
        out = {}
        for key, module in built.items():
            dev = module_device(module)
            with torch.no_grad():
                if isinstance(key, tuple):
                    act = self.tensors(xb, [key[1]])[key[1]]
                    got = module(torch.as_tensor(act, device=dev), torch.as_tensor(xb, device=dev))
                else:
                    got = module(torch.as_tensor(xb, device=dev))
            err = float(np.abs(got.double().cpu().numpy() - expected).max())
            name = f"from {key[1]}" if isinstance(key, tuple) else "whole model"
            out[name] = {**conversion_of(module), "max_abs_logit_error": err}
        return out

    def torch_module_cached(self, name: str, build: Callable[[], T]) -> T:
        """A torch module converted from this model (``build``), cached on disk by the model's
        sha256 (:meth:`derived_on_disk`), keyed also by the torch and onnx2torch versions;
        loaded onto smug's device.  The file is a pickle: the cache folder must be the user's own."""
        from importlib.metadata import version

        from smug.models.torch_backend import device, torch_module

        torch = torch_module()
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        key = f"{safe}-torch{torch.__version__}-onnx2torch{version('onnx2torch')}-{CONVERSION_SCHEME}.pt"

        def load(path: Path):
            module = torch.load(path, map_location=device(), weights_only=False).eval()
            for p in module.parameters():
                p.requires_grad_(False)
            return module

        return self.derived_on_disk(key, build, lambda module, path: torch.save(module, path), load)
