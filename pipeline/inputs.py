"""From a request to what a method works on: the loaded model and the checked input."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from smug.common import softmax
from smug.models.labels import class_names
from smug.models.preprocess import InputError, check_array
from smug.models.runtime import ModelError, OnnxModel
from smug.models.text_cnn import Tokenizer, TokenizedText, load_tokenizer
from smug.models.zoo import ZOO, ZooEntry, load_model
from smug.pipeline.models import check_model_input
from smug.pipeline.request import ArrayInput, DemoInput, ExplainRequest, ImageFile, TextInput


@dataclass(frozen=True)
class ImageSubject:
    """A loaded image model and one checked model-space input."""

    model: OnnxModel
    entry: ZooEntry | None
    x: np.ndarray = field(repr=False)  # model-space input, float32, the model's input shape
    picture: np.ndarray = field(repr=False)  # RGB uint8 for display
    label: str
    class_names: list[str]
    probabilities: np.ndarray = field(repr=False)

    def target(self, requested: int | None) -> int:
        """The class to explain: ``requested`` (checked) or the prediction."""
        n = len(self.probabilities)
        if requested is None:
            return int(np.argmax(self.probabilities))
        if not 0 <= requested < n:
            raise InputError(f"target {requested} is not one of the model's {n} classes")
        return int(requested)


@dataclass(frozen=True)
class TextSubject:
    model: OnnxModel
    tokenizer: Tokenizer
    tokens: TokenizedText


def load_image(request: ExplainRequest, check_model: Callable[[OnnxModel], None] | None = None) -> ImageSubject:
    """The model and the request's image, array or demo input (errors name the problem);
    ``check_model`` refuses a model the method cannot take, before any input is read or run."""
    model, entry = load_model(request.model)
    if check_model is not None:
        check_model(model)
    if entry is not None and entry.kind == "text":
        raise InputError(f"'{request.model}' is a text model: send text")
    src = request.input
    if isinstance(src, DemoInput):
        if entry is None:
            raise InputError("an input is required for a model outside the zoo")
        src = ImageFile(str(entry.demo_input))
    prep = request.preprocess or (entry.preprocess if entry is not None else None)
    if isinstance(src, ArrayInput):
        x = check_model_input(src.array, model.input_shape)
        picture = prep.to_display(x) if prep is not None and x.ndim == 3 and x.shape[0] in (1, 3) \
            else grey_picture(x)
    else:
        if prep is None:
            raise InputError("image files need a preprocessing for a model outside the zoo: give --preprocess "
                             "(e.g. '{\"crop\": 28, \"scale\": 255, \"grayscale\": true}') or a .npy array")
        x, picture = prep.load(src.path if isinstance(src, ImageFile) else src.data)
        x = check_array(x, model.input_shape)
    probs = softmax(model.logits(x[None])[0])
    names = entry.class_names() if entry else class_names(len(probs))
    return ImageSubject(model, entry, x, picture, request.input_label() if not isinstance(request.input, DemoInput)
                        else str(src.path), names, probs)


def grey_picture(x: np.ndarray) -> np.ndarray:
    """A model-space array outside the zoo shown as grey levels (channel mean, min-max)."""
    a = x if x.ndim == 3 else x.reshape(1, 1, -1)
    v = a.mean(axis=0)
    v = (255 * (v - v.min()) / max(1e-12, float(np.ptp(v)))).astype(np.uint8)
    return np.repeat(v[..., None], 3, axis=2)


def load_text_model(model: str) -> tuple[OnnxModel, Tokenizer]:
    """A text zoo model, or an ``.onnx`` path whose tokenizer lies beside it as ``<stem>.json``."""
    entry = ZOO.get(model)
    if entry is not None:
        if entry.kind != "text":
            raise ModelError(f"'{model}' is an image model; text needs a text model such as 'text-cnn'")
        m, _ = load_model(model)
        tok = load_tokenizer(Path(entry.onnx_path()).with_suffix(".json"))
    else:
        path = Path(model)
        if not path.with_suffix(".json").is_file():
            raise ModelError("a text model outside the zoo needs its tokenizer as a .json file beside the .onnx")
        m = OnnxModel.load(path)
        try:
            tok = load_tokenizer(path.with_suffix(".json"))
        except (KeyError, ValueError):
            raise ModelError("the .json file beside the model holds no tokenizer") from None
    if m.input_shape != (tok.length,):
        raise ModelError(f"the tokenizer pads to {tok.length} words but the model takes {m.input_shape}")
    return m, tok


def tokenize(tok: Tokenizer, text: str | bytes) -> TokenizedText:
    """Tokenize; a text of which no word is known is an error (every word would read as <unk>)."""
    tt = tok(text)
    if len(tt.unknown) == tt.n_words:
        raise InputError(f"none of the {tt.n_words} words of the text is in the model's vocabulary "
                         f"(every word would read as <unk>)")
    return tt


def load_text(request: ExplainRequest) -> TextSubject:
    model, tok = load_text_model(request.model)
    src = request.input
    if isinstance(src, DemoInput):
        entry = ZOO.get(request.model)
        if entry is None:
            raise InputError("a text is required for a model outside the zoo")
        text = entry.demo_input.read_text(encoding="utf-8").strip()
    elif isinstance(src, TextInput):
        text = src.text
    else:
        raise InputError("a text model takes text")
    if request.target not in (None, 0):
        raise InputError("a text model has one output (the rating): target must be 0 or left out")
    return TextSubject(model, tok, tokenize(tok, text))


def masked_prediction(model: OnnxModel, masked: np.ndarray, target: int, names: list[str],
                      min_confidence: float | None = None) -> dict:
    """The model's forward pass (onnxruntime, float32) on the masked input: its class, the
    target's probability, the logit margin of the target over the runner-up, and whether
    the decision is kept (the target stays the prediction, with ``min_confidence`` if given)."""
    z = model.logits(masked.reshape(model.input_shape)[None].astype(np.float32))[0].astype(np.float64)
    p = softmax(z)
    top = int(p.argmax())
    others = np.delete(z, target)
    margin = float(z[target] - others.max()) if others.size else math.inf
    keeps = top == target and (min_confidence is None or float(p[target]) >= min_confidence)
    return {"class": top, "name": names[top], "confidence": float(p[top]), "target_confidence": float(p[target]),
            "keeps_class": bool(keeps), "margin": margin, "forward": "onnxruntime float32"}
