"""One explanation request for every front end, validated in one place before any heavy work.

    >>> req = ExplainRequest.build(model="mnist-mlp", method="whole-network", timeout=10)
    >>> req = ExplainRequest.build("cat.jpg", top_k=3000, gamma=0.0)      # first-layer SMUG
    >>> req = ExplainRequest.build(model="text-cnn", text="a gorgeous film")

``build`` routes the method's parameters to its configuration class, which owns their
validation (:class:`~smug.encoders.smug.SmugConfig`, :class:`~smug.encoders.network.NetworkConfig`,
:class:`~smug.encoders.text.TextSmugConfig`, :class:`BaselineConfig`), checks the backend
against the solver's registry, the timeout, the target and the input's existence, and
raises :class:`RequestError` naming the problem.  The CLI, the gRPC conversion and batch
manifests all call it, so they refuse the same things with the same words.
"""

from __future__ import annotations

import inspect
import math
import os
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from smug.deadline import DEFAULT_TIMEOUT  # noqa: F401 (a request's default; front ends read it here)
from smug.encoders.config import NetworkConfig, SmugConfig, TextSmugConfig
from smug.models.errors import InputError, ModelError  # noqa: F401 (the errors a request can raise)
from smug.models.preprocess import ImagePreprocess
from smug.pipeline.keep_class import KeepClass
from smug.pipeline.robust_config import RobustConfig
from smug.solver.backends import all_backends, check_backend

SMUG = "smug"  # first-layer SMUG (paper 003 Eq. 3); "first-layer" is accepted as a synonym
WHOLE_NETWORK = "whole-network"  # paper 003 Appendix A, Eq. 6
SOLVED_METHODS = (SMUG, WHOLE_NETWORK)
ROBUST = "robust"  # robust (abductive) explanations over an epsilon-box (issue 30, smug.pipeline.robust)
# other names users type for the same methods (the CLI, the API, manifests and `smug evaluate` alike)
METHOD_ALIASES = {"first-layer": SMUG, "whole_network": WHOLE_NETWORK, "ig": "integrated_gradients",
                  "gbp": "guided_backprop", "grad_cam": "gradcam"}
TEXT_ROWS = ("smug", "smug_base", "text_ig", "text_sis")  # rows of a text explanation (paper 003 Fig. 4)
MAX_TIMEOUT = 7 * 24 * 3600.0
BACKENDS = all_backends()  # every backend name a request may give (the solver's registry)


LABEL = {"identity": "label"}  # field metadata: the field names a request and changes no answer (pipeline/identity.py)


class RequestError(ValueError):
    """A request that cannot be run: the message names the parameter or input at fault."""


# ---- inputs --------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageFile:
    """An image file, read with the zoo model's preprocessing."""

    path: str


@dataclass(frozen=True)
class ImageBytes:
    """An encoded image (PNG, JPEG, ...) held in memory, e.g. an upload."""

    data: bytes = field(repr=False)
    label: str = field(default="uploaded image", metadata=LABEL)


@dataclass(frozen=True)
class ArrayInput:
    """A model-space array (the model's input shape, a batch of one allowed)."""

    array: np.ndarray = field(repr=False)
    label: str = field(default="array", metadata=LABEL)


@dataclass(frozen=True)
class TextInput:
    """A text for a text model."""

    text: str


@dataclass(frozen=True)
class DemoInput:
    """The zoo model's bundled demo input."""


Input = Union[ImageFile, ImageBytes, ArrayInput, TextInput, DemoInput]


@dataclass(frozen=True)
class TextOptions:
    """Text explanations: the SMUG encoding plus the rows to compute."""

    smug: TextSmugConfig = field(default_factory=TextSmugConfig)
    rows: tuple[str, ...] = TEXT_ROWS
    sis_threshold: float | None = None

    def __post_init__(self) -> None:
        unknown = [r for r in self.rows if r not in TEXT_ROWS]
        if unknown or not self.rows:
            raise ValueError(f"unknown text rows {unknown}; choose from {TEXT_ROWS}")
        if self.sis_threshold is not None and not math.isfinite(self.sis_threshold):
            raise ValueError(f"sis_threshold must be finite, got {self.sis_threshold}")


@dataclass(frozen=True)
class BaselineConfig:
    """A baseline attribution method (``smug.baselines``) and its own parameters."""

    params: dict = field(default_factory=dict)


Config = Union[SmugConfig, NetworkConfig, TextOptions, BaselineConfig, RobustConfig]


def method_parameters() -> tuple[str, ...]:
    """Every parameter name of the solved methods' configs and the keep-class options: their
    dataclass fields (a baseline's parameters are its function's own)."""
    names: list[str] = []

    def walk(cls) -> None:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if is_dataclass(hints[f.name]):
                walk(hints[f.name])
            elif f.name not in names:
                names.append(f.name)

    for cls in (*typing.get_args(Config), KeepClass):
        if cls is not BaselineConfig:
            walk(cls)
    return tuple(names)


def with_request_parameters(fn):
    """``fn`` (a call that passes its ``**params`` on to :meth:`ExplainRequest.build`) with a signature
    that spells them out: ``build``'s named parameters and every method parameter
    (:func:`method_parameters`, None: the method's default), then ``**params`` for a baseline's own, so
    that ``help(fn)`` and editors show what a call may pass.  The defaults and checks stay in ``build``."""
    own = list(inspect.signature(fn).parameters.values())
    rest = [p for p in own if p.kind is p.VAR_KEYWORD]
    named = [p for p in own if p.kind is not p.VAR_KEYWORD]
    taken = {p.name for p in named} | {"input"}  # build's input is fn's source
    for p in inspect.signature(ExplainRequest.build).parameters.values():
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in taken and p.name != "cls":
            named.append(p.replace(kind=p.KEYWORD_ONLY))
            taken.add(p.name)
    named += [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in method_parameters()
              if n not in taken]
    fn.__signature__ = inspect.signature(fn).replace(parameters=named + rest)
    return fn


# ---- the request ---------------------------------------------------------------------
@dataclass(frozen=True)
class ExplainRequest:
    """Everything one explanation needs; build it with :meth:`build` (validated)."""

    model: str
    input: Input
    method: str  # "smug", "whole-network" or a baseline name
    config: Config
    modality: str  # "image" or "text"
    backend: str = "auto"
    target: int | None = None
    timeout: float = DEFAULT_TIMEOUT  # solver seconds (the deadline, if sooner, caps it)
    name: str | None = field(default=None, metadata=LABEL)  # a job name (batch manifests)
    keep: KeepClass | None = None  # keep-class mode (smug.pipeline.keep_class); None: plain SMUG
    preprocess: ImagePreprocess | None = None  # image files for a model outside the zoo (or overriding its own)

    @classmethod
    def build(cls, input: Any = None, model: str = "efficientnet-lite0", *, text: str | bytes | None = None,
              method: str = SMUG, backend: str = "auto", target: int | None = None, timeout: float | None = None,
              name: str | None = None, keep_class: bool = False, preprocess: ImagePreprocess | dict | str | None = None,
              **params) -> "ExplainRequest":
        """A validated request; ``params`` are the method's parameters (None: its default).
        ``timeout``: solver seconds (None: :data:`DEFAULT_TIMEOUT`).  ``keep_class``: refine the constraints until the masked input keeps the decision
        (first-layer SMUG and text; ``min_confidence`` then applies to that check).
        ``preprocess``: how image files become model inputs (see
        :meth:`~smug.models.preprocess.ImagePreprocess.from_spec`; a dict, JSON text or a JSON
        file), needed for image files on a model outside the zoo.  ``input`` may also be a
        ``.npy`` file holding a model-space array."""
        model = _check_model(model)
        modality = "text" if text is not None or zoo_kind(model) == "text" else "image"
        method = _check_method(method, modality)
        source = _check_input(input, text, modality)
        params = {k: v for k, v in params.items() if v is not None}
        keep = _keep_options(method, keep_class, params)
        config = _config(method, modality, params)
        if method in SOLVED_METHODS:
            kind = "whole-network" if method == WHOLE_NETWORK else "first-layer"
            try:
                check_backend(kind, backend)
            except ValueError as exc:
                raise RequestError(str(exc)) from None
        elif backend != "auto":
            raise RequestError(f"backend {backend!r} does not apply to {method!r}")
        return cls(model=model, input=source, method=method, config=config, modality=modality, backend=backend,
                   target=_check_target(target), timeout=_check_timeout(DEFAULT_TIMEOUT if timeout is None else timeout), name=name, keep=keep,
                   preprocess=_preprocess(preprocess))

    @property
    def problem_kind(self) -> str | None:
        """The solver's problem kind ("first-layer", "whole-network"), None for baselines."""
        return {SMUG: "first-layer", WHOLE_NETWORK: "whole-network"}.get(self.method)

    def input_label(self) -> str:
        src = self.input
        if isinstance(src, ImageFile):
            return src.path
        if isinstance(src, (ImageBytes, ArrayInput)):
            return src.label
        if isinstance(src, TextInput):
            return "text"
        return "demo input"

    def to_json(self) -> dict:
        """The request's parameters as JSON (the input by its label only)."""
        config = asdict(self.config)
        return {"model": self.model, "input": self.input_label(), "method": self.method, "modality": self.modality,
                "config": config, "backend": self.backend, "target": self.target, "timeout": self.timeout,
                "name": self.name, "keep_class": None if self.keep is None else asdict(self.keep),
                "preprocess": None if self.preprocess is None else asdict(self.preprocess)}


# ---- checks --------------------------------------------------------------------------
def zoo_kind(model: str) -> str | None:
    """The zoo entry's kind ("image" or "text"), None outside the zoo."""
    from smug.models.zoo import ZOO

    entry = ZOO.get(model)
    return None if entry is None else entry.kind


def _check_model(model: str) -> str:
    from smug.models.zoo import ZOO

    if not isinstance(model, str) or not model:
        raise RequestError("a model is required: a zoo name or a path to an .onnx file")
    if model in ZOO:
        return model
    if not Path(model).is_file():
        shown = model if len(model) <= 200 else model[:200] + "..."
        raise RequestError(f"unknown model {shown!r}: use one of {sorted(ZOO)} or a path to an .onnx file")
    return model


def baseline_names() -> list[str]:
    from smug.baselines.attribution import methods

    return methods()


def canonical_method(method: str) -> str:
    """The registered name of ``method`` (aliases such as ``ig`` resolved)."""
    return METHOD_ALIASES.get(method, method)


def _check_method(method: str, modality: str) -> str:
    method = canonical_method(method)
    if method in SOLVED_METHODS or method == ROBUST:
        if modality == "text" and method in (WHOLE_NETWORK, ROBUST):
            raise RequestError(f"{method} is for image models; text uses the first-layer SMUG encoding")
        return method
    if modality == "text":
        raise RequestError(f"text models explain with method 'smug' (rows {TEXT_ROWS}); got {method!r}")
    names = [m for m in baseline_names() if not m.startswith("text_")]
    if method not in names:
        raise RequestError(f"unknown method {method!r}: choose smug, whole-network or a baseline: {', '.join(names)}")
    return method


def _check_input(source: Any, text: str | bytes | None, modality: str) -> Input:
    from smug.models.text_cnn import check_text

    if modality == "text":
        if source is not None and not isinstance(source, (TextInput, DemoInput)):
            raise RequestError("a text model takes text, not an image or array")
        if isinstance(source, (TextInput, DemoInput)):
            return source
        if text is None:
            return DemoInput()
        t = check_text(text)
        if not t.strip():
            raise RequestError("the text is empty")
        return TextInput(t)
    if text is not None:
        raise RequestError("text input needs a text model such as 'text-cnn'")
    if source is None:
        return DemoInput()
    if isinstance(source, (ImageFile, ImageBytes, ArrayInput, DemoInput)):
        return source
    if isinstance(source, np.ndarray):
        return ArrayInput(_float_array(source, "the array"))
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise RequestError("the image is empty")
        return ImageBytes(bytes(source))
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not Path(path).is_file():
            raise RequestError(f"input file not found: {path}")
        if path.endswith(".npy"):
            try:
                array = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                raise RequestError(f"{path} is not a readable .npy array") from None
            return ArrayInput(_float_array(array, path), label=path)
        return ImageFile(path)
    raise RequestError(f"unsupported input type {type(source).__name__}: an image path, image bytes or an array")


def _float_array(array: np.ndarray, what: str) -> np.ndarray:
    """A model-space array as given: floating point.  Integers (say uint8 pixels 0..255) are refused rather
    than guessed at, since the model's own scaling (0..1, mean/std, ...) is not known here."""
    if array.dtype.kind == "f":
        return array
    if array.dtype.kind in "iub" and array.size:
        held = f"{array.dtype} values {array.min()}..{array.max()}"
        raise RequestError(f"{what} holds {held}: a model-space array is the model's input itself, in floating "
                           f"point; scale it as the model expects (e.g. x / 255 for inputs in [0, 1]) and pass "
                           f"float32, or give the image file")
    raise RequestError(f"{what} has dtype {array.dtype}: a model-space array is floating point")


def _keep_options(method: str, keep_class: bool, params: dict) -> KeepClass | None:
    """The keep-class options (taking ``min_confidence`` out of ``params``), or None."""
    if not isinstance(keep_class, bool):
        raise RequestError(f"keep_class must be true or false, got {keep_class!r}")
    if not keep_class:
        return None
    if method == WHOLE_NETWORK:
        return None  # whole-network masks keep the class by construction (Eq. 6)
    if method != SMUG:
        raise RequestError(f"keep_class applies to smug and whole-network, not to the baseline {method!r}")
    try:
        return KeepClass(params.pop("min_confidence", None))
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def _config(method: str, modality: str, params: dict) -> Config:
    if modality == "text":
        own = {k: params.pop(k) for k in ("rows", "sis_threshold") if k in params}
        if "rows" in own:
            own["rows"] = tuple(own["rows"])
        smug = _make(TextSmugConfig, params, "text SMUG")
        return _make(TextOptions, {"smug": smug, **own}, "text")
    if method == SMUG:
        return _make(SmugConfig, params, "first-layer SMUG")
    if method == WHOLE_NETWORK:
        return _make(NetworkConfig, params, "whole-network")
    if method == ROBUST:
        return _make(RobustConfig, params, "robust")
    return BaselineConfig(_baseline_params(method, params))


def _make(cls, params: dict, what: str):
    names = {f for f in cls.__dataclass_fields__}
    unknown = sorted(set(params) - names)
    if unknown:
        raise RequestError(f"parameters {unknown} do not apply to {what}; it takes {sorted(names)}")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise RequestError(str(exc)) from None


def _baseline_params(method: str, params: dict) -> dict:
    from smug.baselines.attribution import METHODS

    fn = METHODS[method]
    sig = inspect.signature(fn)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    known = [n for n in list(sig.parameters)[3:] if sig.parameters[n].kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = sorted(set(params) - set(known))
    if unknown and not takes_any:
        raise RequestError(f"parameters {unknown} do not apply to the baseline {method!r}; it takes {known}")
    return dict(params)


def _preprocess(spec: ImagePreprocess | dict | str | None) -> ImagePreprocess | None:
    """A preprocessing from a dict, JSON text or a JSON file (errors name the problem)."""
    import json

    if spec is None or isinstance(spec, ImagePreprocess):
        return spec
    if isinstance(spec, str):
        text = spec
        if not spec.lstrip().startswith("{"):
            if not Path(spec).is_file():
                raise RequestError(f"preprocessing file not found: {spec} (or give it as JSON text)")
            text = Path(spec).read_text()
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestError(f"the preprocessing is not valid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(spec, dict):
        raise RequestError("the preprocessing must be a JSON object such as {\"crop\": 224, \"resize\": 256}")
    try:
        return ImagePreprocess.from_spec(spec)
    except InputError as exc:
        raise RequestError(str(exc)) from None


def _check_target(target: int | None) -> int | None:
    if target is None:
        return None
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or target < 0:
        raise RequestError(f"target must be a class index >= 0, got {target!r}")
    return int(target)


def _check_timeout(timeout: float) -> float:
    try:
        t = float(timeout)
    except (TypeError, ValueError):
        raise RequestError(f"timeout must be a number of seconds, got {timeout!r}") from None
    if not (math.isfinite(t) and 0 < t <= MAX_TIMEOUT):
        raise RequestError(f"timeout must be positive, finite and at most {MAX_TIMEOUT:.0f} seconds, got {timeout!r}")
    return t
