"""One explanation type for every modality and method, and its JSON (with a schema version).

An :class:`Explanation` carries what every answer has (model, target, status, objective,
lower bound, proof, certificate, the masked input's prediction, timings) and the
modality's own parts as typed fields: :class:`ImageParts` (block mask, pixel mask,
Eq. 4 saliency, SMUG_base, the display picture; a baseline's map as the saliency) or
:class:`TextParts` (words, rating, one :class:`MethodRow` per method).  The CLI's
``result.json``, the API's :meth:`Explanation.to_json` and the gRPC reply's
``result_json`` are the same document.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from smug.common import jsonable, write_files

SCHEMA_VERSION = 1
ARRAYS_FILE = "arrays.npz"  # an image answer's arrays, beside result.json (Explanation.load reads both)
SOLVED = ("optimal", "feasible")  # statuses that carry a verified mask
MAP = "map"  # the status of a baseline: a map, nothing solved or proven


@dataclass(frozen=True)
class ImageParts:
    """Arrays of an image explanation (``None`` where the method has none)."""

    picture: np.ndarray = field(repr=False)  # RGB uint8 (H, W, 3) of the input
    saliency: np.ndarray = field(repr=False)  # (H, W): Eq. 4 on the mask, or a baseline's map
    mask: np.ndarray | None = field(default=None, repr=False)  # bool block grid (rows, cols)
    pixel_mask: np.ndarray | None = field(default=None, repr=False)  # bool (H, W)
    base_mask: np.ndarray | None = field(default=None, repr=False)  # bool block grid: SMUG_base
    base_saliency: np.ndarray | None = field(default=None, repr=False)  # (H, W): Eq. 4 on SMUG_base

    ARRAYS = ("picture", "saliency", "mask", "pixel_mask", "base_mask", "base_saliency")


@dataclass(frozen=True)
class MethodRow:
    """One method's explanation of a text: a signed score and a selection per word."""

    method: str
    scores: list[float]  # one per word, signed relevance to the rating
    selected: list[bool] | None  # one per word; None when the method found nothing
    measures: dict  # sparsity, sufficiency, comprehensiveness (None without a selection)
    seconds: float
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TextParts:
    """The text side of an explanation (paper 003 Sec. 5.3)."""

    text: str
    words: list[str]
    unknown: list[int]  # word positions read as <unk>
    truncated: bool
    rating: float
    direction: str  # positive: explains the rating; negative: explains 1 - rating
    masked_rating: float | None  # the model's rating of the masked text (informative)
    rows: tuple[MethodRow, ...]

    def row(self, method: str) -> MethodRow:
        for r in self.rows:
            if r.method == method:
                return r
        raise KeyError(f"no row for method {method!r}; rows: {[r.method for r in self.rows]}")


@dataclass(frozen=True, repr=False)
class Explanation:
    """The answer to one :class:`~smug.pipeline.request.ExplainRequest`."""

    model: str
    input: str
    method: str  # smug | whole-network | a baseline name
    request: dict  # the request's parameters (ExplainRequest.to_json)
    target: int
    target_name: str
    confidence: float  # the model's probability (or rating) of the target on the input
    status: str  # optimal | feasible | infeasible | unknown | map (a baseline)
    objective: int | None  # mask size (blocks, pixels or words)
    lower_bound: int
    n_vars: int  # mask variables: blocks, pixels or words
    proof: str
    certificate: dict
    masked_prediction: dict  # the model on the masked input (informative, not a constraint)
    ig: dict
    encoding: dict
    timings: dict
    warnings: tuple[str, ...] = ()
    image: ImageParts | None = None
    text: TextParts | None = None
    origin: dict = field(default_factory=dict)  # where it was computed (server, request id, model id)
    # the request it answers (pipeline/identity.py; empty in answers of an older smug)
    identity: str = ""  # the request's identity digest
    id_scheme: int | None = None
    input_sha256: str = ""  # of the input's content
    model_sha256: str = ""  # of the model's ONNX file

    def __repr__(self) -> str:
        size = "no mask" if self.objective is None else f"{self.objective} of {self.n_vars}"
        return (f"Explanation({self.method} on {self.model}: {self.status}, {size}, target {self.target} "
                f"{self.target_name!r}, keeps_class={self.keeps_class}, certificate_valid={self.certificate.get('valid')})")

    def _repr_html_(self) -> str:
        """Notebook display: the figure (image) or the text page, and the key facts."""
        import base64
        import html

        said = {True: "yes", False: "no", None: "-"}
        facts = {"method": self.method, "model": self.model, "status": self.status,
                 "mask": "-" if self.objective is None else f"{self.objective} of {self.n_vars} (proven >= "
                                                             f"{self.lower_bound})",
                 "target": f"{self.target} {self.target_name} (p = {self.confidence:.3f})",
                 "keeps the decision": said[self.keeps_class], "certificate valid": said[self.certificate.get("valid")]}
        table = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                        for k, v in facts.items())
        if self.image is not None:
            img = base64.b64encode(self.figure()).decode()
            shown = f"<img src='data:image/png;base64,{img}' style='max-width:100%'>"
        elif self.text is not None:
            from smug.rendering.text_html import render_fragment

            shown = render_fragment([self])
        else:
            shown = ""
        return f"<div>{shown}<table>{table}</table></div>"

    # ---- shortcuts --------------------------------------------------------------
    @property
    def modality(self) -> str:
        return "text" if self.text is not None else "image"

    @property
    def config(self) -> dict:
        """The method's parameters (a text's SMUG encoding flattened in) with the backend and timeout."""
        config = dict(self.request.get("config", {}))
        config.update(config.pop("smug", None) or {})
        return {**config, "backend": self.request.get("backend"), "timeout": self.request.get("timeout")}

    @property
    def constraints(self) -> dict:
        """The parameters of the constraint set the mask answers (what ``smug dump`` needs to write
        it): the request's, except that a keep-class answer's ``top_k`` and ``gamma`` are those of
        the step it returned (``encoding.keep_class.constraints``)."""
        out = {k: v for k, v in self.config.items() if k not in ("backend", "timeout")}
        final = (self.encoding.get("keep_class") or {}).get("constraints")
        if final:
            out.update(top_k=final["top_k"], gamma=final["gamma"])
        return out

    @property
    def n_blocks(self) -> int:
        return self.n_vars

    def _image(self, name: str):
        return None if self.image is None else getattr(self.image, name)

    mask = property(lambda self: self._image("mask") if self.text is None else self.word_mask)
    pixel_mask = property(lambda self: self._image("pixel_mask"))
    saliency = property(lambda self: self._image("saliency"))
    base_mask = property(lambda self: self._image("base_mask"))
    base_saliency = property(lambda self: self._image("base_saliency"))
    picture = property(lambda self: self._image("picture"))

    @property
    def word_mask(self) -> list[bool] | None:
        if self.text is None or not any(r.method == "smug" for r in self.text.rows):
            return None
        return self.text.row("smug").selected

    @property
    def mask_fraction(self) -> float | None:
        if self.text is not None:
            m = self.word_mask
            return None if m is None else sum(m) / max(1, len(m))
        return None if self.pixel_mask is None else float(np.mean(self.pixel_mask))

    @property
    def keeps_class(self) -> bool | None:
        """Whether the masked input keeps the decision (None without a mask): the target stays the
        prediction (text: the rating stays on its side of 0.5).  Minimal for its constraints is not
        the same as sufficient for the decision; see ``smug.pipeline.keep_class``."""
        return self.masked_prediction.get("keeps_class")

    @property
    def masked_confidence(self) -> float | None:
        """The target's probability (text: the rating) on the masked input."""
        return self.masked_prediction.get("target_confidence")

    @property
    def request_id(self) -> str:
        return self.origin.get("request_id", "")

    @property
    def model_id(self) -> str:
        return self.origin.get("model_id", "")

    def selected_words(self, method: str = "smug") -> list[str] | None:
        sel = self.text.row(method).selected
        return None if sel is None else [w for w, s in zip(self.text.words, sel) if s]

    # ---- JSON ---------------------------------------------------------------------
    def to_json(self) -> dict:
        """The JSON document (``result.json``): every scalar fact, masks as kept indices."""
        out = {"schema_version": SCHEMA_VERSION}
        for name in self.__dataclass_fields__:
            if name not in ("image", "text"):
                out[name] = getattr(self, name)
        out["warnings"] = list(self.warnings)
        out["config"] = self.config
        out["constraints"] = self.constraints
        out["keeps_class"] = self.keeps_class
        out["masked_confidence"] = self.masked_confidence
        out["modality"] = self.modality
        out["mask_fraction"] = self.mask_fraction
        if self.image is not None:
            mask, base = self.image.mask, self.image.base_mask
            out["mask_blocks"] = None if mask is None else np.argwhere(mask).tolist()
            out["base_size"] = None if base is None else int(np.sum(base))
        if self.text is not None:
            out["text"] = asdict(self.text)
            out["n_words"] = len(self.text.words)
            out["mask_words"] = self.selected_words("smug") if self.word_mask is not None else None
        return json.loads(json.dumps(out, default=jsonable))

    @classmethod
    def from_json(cls, data: dict, arrays: dict[str, np.ndarray | None] | None = None,
                  origin: dict | None = None) -> "Explanation":
        """The inverse of :meth:`to_json` (with the image arrays given separately)."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"explanation schema version {version!r}; this smug reads {SCHEMA_VERSION}")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k not in ("image", "text", "origin")}
        fields["warnings"] = tuple(fields.get("warnings", ()))
        image = text = None
        if data.get("text") is not None:
            t = dict(data["text"])
            t["rows"] = tuple(MethodRow(**r) for r in t["rows"])
            text = TextParts(**t)
        elif arrays is not None and arrays.get("picture") is not None:
            image = ImageParts(**{k: arrays.get(k) for k in ImageParts.ARRAYS})
        return cls(**fields, image=image, text=text, origin={**data.get("origin", {}), **(origin or {})})

    # ---- files ----------------------------------------------------------------------
    def files(self) -> dict[str, bytes]:
        """``result.json`` plus the pictures (image) or the HTML page (text)."""
        body = json.dumps(self.to_json(), indent=2).encode()
        if self.text is not None:
            from smug.rendering.text_html import render_page

            return {"result.json": body, "explanation.html": render_page([self]).encode()}
        from smug.rendering.pictures import mask_png, overlay_png, saliency_png

        files = {"result.json": body}
        if self.image is None:
            return files
        shown = np.abs(self.image.saliency)
        pixel_mask = self.image.pixel_mask
        if self.status != MAP:
            files["mask.png"] = mask_png(pixel_mask if pixel_mask is not None else np.zeros(shown.shape, bool))
        files[ARRAYS_FILE] = self._arrays_npz()
        files["saliency.png"] = saliency_png(shown)
        files["overlay.png"] = overlay_png(self.image.picture, shown)
        files["figure.png"] = self.figure()
        return files

    def figure(self) -> bytes:
        """A readable PNG of an image answer (:mod:`smug.rendering.figure`)."""
        from smug.rendering.figure import answer_figure

        return answer_figure(self)

    def plot(self):
        """The same figure as a matplotlib ``Figure`` (the ``plot`` extra), for image answers: a notebook
        shows it once, as a cell's value (it is not a pyplot figure, so the inline backend does not show it
        a second time at the cell's end, and figures made in a loop stay out of pyplot's list);
        ``fig.savefig(path)`` writes it from a script.  It holds :meth:`figure`'s pixels, one for one."""
        if self.image is None:
            raise ValueError("plot() draws image answers; a text answer is shown by its page (explanation.html, "
                             "or the notebook display)")
        from smug.rendering.figure import answer_sheet
        from smug.rendering.sheet import render

        try:
            import matplotlib.pyplot  # noqa: F401 (selects the backend: in a notebook, the inline one shows Figures)
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("plot() needs matplotlib (pip install 'smug-explain[plot]'); figure() returns the "
                              "same picture as PNG bytes without it") from None
        pixels = np.asarray(render(answer_sheet(self)))  # figure()'s pixels, without its PNG round trip
        dpi = 100
        fig = Figure(figsize=(pixels.shape[1] / dpi, pixels.shape[0] / dpi), dpi=dpi)
        FigureCanvasAgg(fig)  # drawn in memory: fig.canvas.draw() and buffer_rgba() work as on pyplot's figures
        fig.figimage(pixels, origin="upper")
        return fig

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write :meth:`files` into ``out_dir`` (each atomically)."""
        return write_files(out_dir, self.files())

    def _arrays_npz(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, **{k: getattr(self.image, k) for k in ImageParts.ARRAYS
                                    if getattr(self.image, k) is not None})
        return buf.getvalue()

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Explanation":
        """An explanation written by :meth:`save`: its ``result.json`` (with ``arrays.npz`` beside it
        for an image answer) or their folder."""
        path = Path(path)
        doc = path / "result.json" if path.is_dir() else path
        if not doc.is_file():
            raise ValueError(f"no saved explanation at {path} (expected a result.json or its folder)")
        try:
            data = json.loads(doc.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{doc} is not an explanation's result.json ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{doc} holds several explanations; give one")
        arrays = None
        if data.get("modality") == "image":
            npz = doc.parent / ARRAYS_FILE
            if not npz.is_file():
                raise ValueError(f"{doc} has no {ARRAYS_FILE} beside it (saved by an older smug?); explain again")
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] if k in z.files else None for k in ImageParts.ARRAYS}
        return cls.from_json(data, arrays)


def save_texts(explanations: list[Explanation], out_dir: str | os.PathLike) -> list[Path]:
    """Several text explanations: ``result.json`` (a list) and one ``explanation.html``."""
    from smug.rendering.text_html import render_page

    if len(explanations) == 1:
        return explanations[0].save(out_dir)
    body = json.dumps([e.to_json() for e in explanations], indent=2).encode()
    return write_files(out_dir, {"result.json": body, "explanation.html": render_page(explanations).encode()})
