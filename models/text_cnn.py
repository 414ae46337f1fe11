"""The ``text-cnn`` zoo model: its word tokenizer (shipped as JSON) and small helpers.

The ONNX model takes token ids as a ``(N, L)`` **float32** tensor (cast to int64
inside the graph, before the embedding ``Gather``), so every generic part of smug
(``OnnxModel.logits``, ``checked_input``, the baselines' ``attribute``) handles a
text input like any other float array; ids up to 2**24 are exact in float32.  It
returns ``(N, 1)``: the rating in [0, 1] (sigmoid).

Tokenizer: lowercase, then words are maximal runs of letters and digits, with
inner apostrophes kept (``doesn't``, ``he's``); punctuation is dropped.  Id 0 is
the padding token ``<pad>`` (its embedding is pinned to the zero vector during
training, ``padding_idx=0``), id 1 the unknown-word token ``<unk>``; the
vocabulary comes from the training split only.  A text is left-aligned and
padded to the model length ``L``; longer texts are truncated (and say so).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from smug.common import write_atomic
from smug.models.preprocess import InputError

HERE = Path(__file__).resolve().parent
WORD_PATTERN = r"[^\W_]+(?:'[^\W_]+)*"
PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


@dataclass(frozen=True)
class TokenizedText:
    """One text as the model sees it."""

    text: str
    words: tuple[str, ...]  # the kept words (lowercased), one per non-padding position
    ids: np.ndarray  # (L,) int64, padded with PAD_ID
    n_total: int  # words before truncation
    unknown: tuple[int, ...]  # positions whose word is not in the vocabulary

    @property
    def n_words(self) -> int:
        return len(self.words)

    @property
    def truncated(self) -> bool:
        return self.n_total > self.n_words

    @property
    def model_input(self) -> np.ndarray:
        """(L,) float32: the ONNX model's input for this text."""
        return self.ids.astype(np.float32)

    def warnings(self) -> list[str]:
        out = []
        if self.truncated:
            out.append(f"the text has {self.n_total} words; only the first {self.n_words} (the model length) are used")
        if self.unknown:
            out.append(f"{len(self.unknown)} of {self.n_words} words are not in the model's vocabulary (read as {UNK})")
        return out


@dataclass(frozen=True)
class Tokenizer:
    """Lowercase word tokenizer with a fixed vocabulary and length (see module docstring)."""

    vocabulary: tuple[str, ...]  # id -> token; vocabulary[0] == PAD, vocabulary[1] == UNK
    length: int
    pattern: str = WORD_PATTERN
    _index: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.vocabulary) < 2 or self.vocabulary[PAD_ID] != PAD or self.vocabulary[UNK_ID] != UNK:
            raise ValueError(f"the vocabulary must start with {PAD!r}, {UNK!r}")
        if len(set(self.vocabulary)) != len(self.vocabulary):
            raise ValueError("the vocabulary has duplicate tokens")
        if self.length < 1:
            raise ValueError(f"the model length must be positive, got {self.length}")
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.vocabulary)})

    def words(self, text: str) -> list[str]:
        """All words of ``text`` (lowercased), before truncation."""
        return re.findall(self.pattern, text.lower())

    def id_of(self, word: str) -> int:
        return self._index.get(word, UNK_ID)

    def __call__(self, text: str | bytes) -> TokenizedText:
        """Tokenize, truncate to ``length`` words and pad.  Raises :class:`InputError`
        for bytes that are not UTF-8 and for a text without any word."""
        text = check_text(text)
        words = self.words(text)
        if not words:
            raise InputError("the text is empty: it has no words (letters or digits)")
        kept = words[: self.length]
        ids = np.full(self.length, PAD_ID, dtype=np.int64)
        ids[: len(kept)] = [self.id_of(w) for w in kept]
        unknown = tuple(int(i) for i in np.flatnonzero(ids[: len(kept)] == UNK_ID))
        return TokenizedText(text=text, words=tuple(kept), ids=ids, n_total=len(words), unknown=unknown)

    def decode(self, ids: np.ndarray) -> list[str]:
        """Tokens of the non-padding positions (unknown words come back as ``<unk>``)."""
        ids = np.asarray(ids).astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.vocabulary)):
            raise ValueError(f"token ids must lie in [0, {len(self.vocabulary)})")
        return [self.vocabulary[i] for i in ids if i != PAD_ID]

    # ---- JSON (never pickled) --------------------------------------------------
    def to_json(self) -> dict:
        return {"pattern": self.pattern, "lowercase": True, "length": self.length, "pad": PAD, "unk": UNK,
                "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_json(cls, data: dict) -> "Tokenizer":
        try:
            return cls(vocabulary=tuple(data["vocabulary"]), length=int(data["length"]),
                       pattern=str(data.get("pattern", WORD_PATTERN)))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a tokenizer description: missing or bad field {exc}") from None


def read_lines(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a UTF-8 text file, one text each (bad bytes: an error naming the line)."""
    data = Path(path).read_bytes()
    lines = []
    for no, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: line {no} is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
        if line.strip():
            lines.append(line.strip())
    if not lines:
        raise InputError(f"{path}: the file has no text lines")
    return lines


def check_text(text: str | bytes) -> str:
    """A text as ``str``: bytes must be UTF-8; a str must encode as UTF-8 (no lone
    surrogates, which is how Python carries undecodable command-line bytes)."""
    if isinstance(text, (bytes, bytearray)):
        try:
            return bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"the text is not valid UTF-8: byte 0x{text[exc.start]:02x} at offset {exc.start}") from None
    if not isinstance(text, str):
        raise InputError(f"the text must be a string, got {type(text).__name__}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"the text is not valid UTF-8 (undecodable byte at character {exc.start})") from None
    return text


def save_metadata(path: str | os.PathLike, tokenizer: Tokenizer, meta: dict) -> None:
    """Model card + tokenizer as one JSON file (written atomically)."""
    write_atomic(path, (json.dumps({**meta, "tokenizer": tokenizer.to_json()}, indent=1) + "\n").encode())


def load_metadata(path: str | os.PathLike) -> dict:
    return json.loads(Path(path).read_text())


def load_tokenizer(path: str | os.PathLike = HERE / "text-cnn.json") -> Tokenizer:
    """The tokenizer shipped beside a text model's ONNX file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"tokenizer file not found: {path}")
    return Tokenizer.from_json(load_metadata(path)["tokenizer"])


def tokenizer_for(model_name: str) -> Tokenizer:
    """The tokenizer of a text zoo model (its ``.json`` beside the ``.onnx``)."""
    from smug.models.zoo import ZOO

    entry = ZOO.get(model_name)
    if entry is None or getattr(entry, "kind", "image") != "text":
        raise InputError(f"'{model_name}' is not a text model of the zoo")
    return load_tokenizer(Path(entry.onnx_path()).with_suffix(".json"))


def ratings(model, ids: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The model's rating for a batch of id rows (N, L) -> (N,)."""
    ids = np.asarray(ids)
    return model.logits(ids.reshape(-1, *model.input_shape).astype(np.float32), batch_size=batch_size)[:, 0].astype(np.float64)
