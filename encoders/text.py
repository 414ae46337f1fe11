"""SMUG for text models (paper 003 Sec. 3.2-3.3 and 5.3): one mask variable per word.

The first layer is the convolution over the word embeddings.  Its input is the
embedded text ``e`` of shape (E, L) (embedding dimension x position), flattened
channel-major exactly like an image (C, H=1, W=L), so a Conv1d is a 2-D
convolution with a 1 x width kernel and :class:`~smug.encoders.first_layer.FirstLayer`,
:func:`~smug.encoders.smug.build_problem`, :mod:`~smug.encoders.saliency`, the solver
and the certificate serve words as they serve pixel blocks.

* **Mask variables**: one per non-padding position (word), shared over the E
  embedding coordinates of that position; padding positions get group ``-1`` and
  are never mask variables.
* **Masked word = the zero embedding.**  The reference code masks by zeroing the
  input; the shipped model pins its padding embedding to zero (``padding_idx=0``),
  so a masked word is *also* exactly a padding token: the masked text the
  encoding reasons about is the ONNX model's input with those ids replaced by the
  padding id, and the model can be re-run on it (tests check this equality).
  For a model whose padding embedding is not zero the encoding still masks to
  zero (the reference semantics); :func:`masked_ids` then is not the same input.
* **Neuron selection**: IG (paper 003 Eq. 1) of the explained score on the
  convolution's activations (after its ReLU), zero baseline; top-k by positive
  attribution (:func:`~smug.encoders.smug.select_top_k`).  The model returns one
  rating ``r`` in [0, 1]; the explained score is ``r`` (direction ``positive``) or
  ``1 - r`` (``negative``); ``auto`` takes ``positive`` when ``r >= 0.5``.
* **Constraints**: Eq. 3 for the kept neurons, bias-free (``linear``) or with the
  bias (``affine``), as for images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from smug.encoders.first_layer import (
    FirstLayer, OnnxGraph, UnsupportedModel, activation_after, node_attributes, fold_following,
)
from smug.encoders.ig import IGResult, auto_integrated_gradients, integrated_gradients
from smug.ir import MaskProblem
from smug.encoders.saliency import eq4_scores, receptive_pixels
from smug.encoders.config import DIRECTIONS, TextSmugConfig  # noqa: F401 (re-exported)
from smug.encoders.smug import build_problem, select_top_k
from smug.models.runtime import OnnxModel
from smug.models.text_cnn import PAD_ID



# ---- the model: embedding + first convolution ---------------------------------------
@dataclass(frozen=True)
class TextLayers:
    """The embedding table and the convolution over it, read from an ONNX text model."""

    embedding: np.ndarray  # (V, E) float64
    layer: FirstLayer  # conv over the (E, 1, L) embedded text
    embedded_tensor: str  # ONNX tensor holding the embeddings (N, L, E)
    length: int

    @property
    def dim(self) -> int:
        return self.embedding.shape[1]

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """Flattened (E * L,) float64 model-space input of the first layer (channel-major)."""
        ids = np.asarray(ids).astype(np.int64).ravel()
        if ids.shape != (self.length,):
            raise ValueError(f"expected {self.length} token ids, got {ids.shape[0]}")
        if ids.min() < 0 or ids.max() >= len(self.embedding):
            raise ValueError(f"token ids must lie in [0, {len(self.embedding)})")
        return self.embedding[ids].T.ravel()


def find_text_layers(model: OnnxModel) -> TextLayers:
    """Input ids -> (Cast) -> Gather(embedding) -> Transpose(0, 2, 1) -> Conv(1-D) [-> BN/Add] -> ReLU."""
    if len(model.input_shape) != 1:
        raise UnsupportedModel(f"a text model takes (N, L) token ids; this one takes {model.input_shape}")
    g = OnnxGraph(model)
    tensor = model.input_name
    node = g.only_consumer(tensor)
    if node is not None and node.op_type == "Cast":
        tensor, node = node.output[0], g.only_consumer(node.output[0])
    if node is None or node.op_type != "Gather" or node.input[1] != tensor or node_attributes(node).get("axis", 0) != 0:
        raise UnsupportedModel("a text model must look up its token ids with Gather(embedding, ids) first")
    embedding = np.asarray(g.value(node.input[0]), dtype=np.float64)
    if embedding.ndim != 2:
        raise UnsupportedModel("the embedding table must be a (vocabulary, dim) matrix")
    embedded = node.output[0]
    node = g.only_consumer(embedded)
    if node is None or node.op_type != "Transpose" or list(node_attributes(node).get("perm", [])) != [0, 2, 1]:
        raise UnsupportedModel("expected Transpose(perm=[0, 2, 1]) from (N, L, E) embeddings to (N, E, L)")
    node = g.only_consumer(node.output[0])
    if node is None or node.op_type != "Conv":
        raise UnsupportedModel("the first layer of a text model must be a 1-D Conv over the embeddings")
    return TextLayers(embedding, conv1d_layer(g, node, embedding.shape[1], model.input_shape[0]), embedded,
                      model.input_shape[0])


def conv1d_layer(g: OnnxGraph, node, dim: int, length: int) -> FirstLayer:
    """A 1-D Conv as a 2-D one over (E, 1, L) with a 1 x width kernel."""
    a = node_attributes(node)
    W = np.asarray(g.value(node.input[1]), dtype=np.float64)
    if W.ndim != 3 or W.shape[1] != dim:
        raise UnsupportedModel(f"expected a Conv1d weight (K, {dim}, width), got {W.shape}")
    if int(a.get("group", 1)) != 1:
        raise UnsupportedModel("grouped 1-D convolutions are not supported for text")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise UnsupportedModel("Conv auto_pad SAME_* is not supported; export with explicit pads")
    K, _, width = W.shape
    b = np.asarray(g.value(node.input[2]), dtype=np.float64) if len(node.input) > 2 and node.input[2] else np.zeros(K)
    p0, p1 = list(a.get("pads", [0, 0]))
    (s,), (d,) = tuple(a.get("strides", [1])), tuple(a.get("dilations", [1]))
    out_len = (length + p0 + p1 - d * (width - 1) - 1) // s + 1
    preact, W, b = fold_following(g, node.output[0], W, b)
    act, kind = activation_after(g, preact)
    return FirstLayer(
        kind="conv", weight=W[:, :, None, :], bias=b, input_shape=(dim, 1, length), output_shape=(K, 1, out_len),
        preact_tensor=preact, activation_tensor=act, activation=kind, stride=(1, s), dilation=(1, d),
        pads=(0, p0, 0, p1),
    )


# ---- mask variables: words --------------------------------------------------------
@dataclass(frozen=True)
class WordGrid:
    """One mask variable per non-padding position, shared over the embedding dims.
    Duck-types the parts of :class:`~smug.encoders.blocks.BlockGrid` that
    :func:`~smug.encoders.smug.build_problem` uses (``group``, ``names``, ``n_vars``)."""

    positions: np.ndarray  # (n_words,) positions that are words (variable j = positions[j])
    length: int
    dim: int

    @classmethod
    def of_ids(cls, ids: np.ndarray, dim: int, pad_id: int = PAD_ID) -> "WordGrid":
        ids = np.asarray(ids).astype(np.int64).ravel()
        return cls(np.flatnonzero(ids != pad_id), len(ids), dim)

    @property
    def n_vars(self) -> int:
        return len(self.positions)

    @property
    def spatial(self) -> tuple[int, int]:
        return (1, self.length)

    def group(self) -> np.ndarray:
        """Variable of every (E * L,) input entry; -1 for padding positions."""
        per_pos = np.full(self.length, -1, dtype=np.int64)
        per_pos[self.positions] = np.arange(self.n_vars)
        return np.tile(per_pos, self.dim)

    def names(self) -> tuple[str, ...]:
        return tuple(f"w{int(p)}" for p in self.positions)

    def to_positions(self, values: np.ndarray, fill=0) -> np.ndarray:
        """One value per variable -> one per position (padding gets ``fill``)."""
        values = np.asarray(values)
        out = np.full(self.length, fill, dtype=values.dtype)
        out[self.positions] = values
        return out


def masked_ids(ids: np.ndarray, grid: WordGrid, mask: np.ndarray, pad_id: int = PAD_ID) -> np.ndarray:
    """The token ids with every word the mask drops replaced by padding."""
    out = np.asarray(ids).astype(np.int64).ravel().copy()
    out[grid.positions[~np.asarray(mask, dtype=bool)]] = pad_id
    return out


# ---- encoding ---------------------------------------------------------------------
@dataclass(frozen=True)
class TextEncoding:
    problem: MaskProblem
    grid: WordGrid
    layers: TextLayers
    ids: np.ndarray  # (L,) int64
    rating: float  # the model's output on the whole text
    direction: str  # "positive" (explains r) or "negative" (explains 1 - r)
    neurons: np.ndarray  # top-k kept neurons (flat index), by decreasing attribution
    attribution: np.ndarray  # their IG attributions
    constrained: np.ndarray  # kept neurons that got a constraint (positive original value)
    ig: IGResult

    @property
    def sign(self) -> float:
        """+1 when the explained score is the rating, -1 when it is 1 - rating."""
        return 1.0 if self.direction == "positive" else -1.0

    def eq4_scores(self) -> np.ndarray:
        """Eq. 4 per position: sum of the kept neurons' attributions whose receptive field holds the word."""
        return eq4_scores(self.layers.layer, self.neurons, self.attribution, self.grid.spatial)[0]

    def saliency(self, mask: np.ndarray) -> np.ndarray:
        """Signed relevance per position (sign of the direction: + raises the rating),
        Eq. 4 restricted to the words the mask keeps; 0 elsewhere."""
        keep = self.grid.to_positions(np.asarray(mask, dtype=bool), fill=False)
        return np.where(keep, self.sign * self.eq4_scores(), 0.0)

    def base_mask(self) -> np.ndarray:
        """SMUG_base: every word in some kept neuron's receptive field (one bool per variable)."""
        R = receptive_pixels(self.layers.layer, self.neurons, self.grid.spatial)
        touched = np.asarray(R.sum(axis=0)).ravel() > 0
        return touched[self.grid.positions]


def choose_direction(direction: str, rating: float) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if direction == "auto":
        return "positive" if rating >= 0.5 else "negative"
    return direction


def score_from_activation(model: OnnxModel, layers: TextLayers, ids: np.ndarray, direction: str):
    """torch: first-layer activations (B, K, L') -> explained score (B,) (r or 1 - r)."""
    from smug.models.torch_backend import device, torch_module

    torch = torch_module()
    tail = model.torch_tail(layers.layer.activation_tensor)
    xin = torch.as_tensor(np.asarray(ids, dtype=np.float32)[None], device=device())

    def score(a):
        r = tail(a, xin.expand(a.shape[0], -1))[:, 0]
        return r if direction == "positive" else 1.0 - r

    return score


def encode_text(
    model: OnnxModel, ids: np.ndarray, config: TextSmugConfig = TextSmugConfig(), layers: TextLayers | None = None,
    pad_id: int = PAD_ID,
) -> TextEncoding:
    """IG on the convolution's activations, top-k selection, and Eq. 3 over word masks."""
    layers = layers or find_text_layers(model)
    ids = np.asarray(ids).astype(np.int64).ravel()
    x = layers.embed(ids)
    grid = WordGrid.of_ids(ids, layers.dim, pad_id)
    if grid.n_vars == 0:
        raise ValueError("the text has no words (only padding)")
    t = layers.layer.activation_tensor
    acts = model.tensors(ids[None].astype(np.float32), [t, model.output_name])
    activation = acts[t][0].reshape(layers.layer.output_shape)
    rating = float(acts[model.output_name].ravel()[0])
    direction = choose_direction(config.direction, rating)
    score = score_from_activation(model, layers, ids, direction)
    view = acts[t][0]  # the activation in the graph's own layout (K, L')
    if config.ig_steps is None:
        ig = auto_integrated_gradients(score, view, tolerance=config.ig_tolerance)
    else:
        ig = integrated_gradients(score, view, steps=config.ig_steps)
    ig = IGResult(ig.attribution.reshape(activation.shape), ig.steps, ig.f_input, ig.f_baseline,
                  ig.completeness_error, ig.seconds)
    neurons = select_top_k(ig.attribution, config.top_k)
    problem, constrained = build_problem(layers.layer, x, neurons, grid, config.gamma, config.form, 0.0)
    return TextEncoding(
        problem=problem, grid=grid, layers=layers, ids=ids, rating=rating, direction=direction, neurons=neurons,
        attribution=ig.attribution.ravel()[neurons], constrained=constrained, ig=ig,
    )
