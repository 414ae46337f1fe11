"""One graph normalisation before a torch conversion: onnxruntime's *basic* graph optimisation.

Measured on torchvision ResNet-18 and MobileNetV3-small exported by the TorchScript exporter at
opsets 17 and 20 (docs/compat.md): onnx2torch fails on every raw export (``KeyError`` on an
initializer name at opset 17, no ``Identity`` converter for opset 19+) and converts all four after
any of onnxruntime's basic level, onnxslim, onnxoptimizer or onnxsim, with the same logits; the
basic level took 0.3-1.2 s, onnxslim 0.3-0.9 s, onnxoptimizer 0.4-2.3 s, onnxsim 3.9-7.1 s on one
core, and it needs no package beyond the onnxruntime smug already runs on.  (None of them
makes onnx2torch read the dynamo exporter's opset-18+ ``ReduceMean`` or ``Reshape(allowzero=1)``:
that is what :mod:`smug.models.onnx_torch` is for.)
"""

from __future__ import annotations

import os
import tempfile

import onnx

from smug.models.ort import onnxruntime

# onnxruntime's basic optimisers that would change weights (folding BatchNorm, Add or
# Mul into a Conv) are left off: the normalised graph keeps every weight as it is.
WEIGHT_CHANGING = ("ConvBNFusion", "ConvAddFusion", "ConvMulFusion")


def normalised(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` after onnxruntime's *basic* graph optimisations (standard ONNX
    only: constant folding -- e.g. the per-layer Shape/Slice/Concat arithmetic that computes
    ``Pad`` amounts at run time --, ``Identity`` and ``Dropout`` removed, ``Pad`` merged into
    the next ``Conv``'s pads), the weight-changing fusions left off; ``proto`` is not changed."""
    ort = onnxruntime()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        opts.optimized_model_filepath = os.path.join(tmp, "basic.onnx")
        ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"],
                             disabled_optimizers=list(WEIGHT_CHANGING))
        return onnx.load(opts.optimized_model_filepath)
