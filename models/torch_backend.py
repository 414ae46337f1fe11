"""torch settings and the onnx2torch conversion in one place."""

from __future__ import annotations

import os

import onnx


def torch_module():
    """Import torch with smug's thread policy (1 thread unless SMUG_TORCH_THREADS)."""
    import torch

    threads = int(os.environ.get("SMUG_TORCH_THREADS", "1"))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    # IG ranks neurons by small differences: full float32 on GPUs too (no TF32 shortcuts)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def device():
    """``$SMUG_DEVICE`` if set (``cpu``, ``cuda``, ``cuda:1``), else CUDA when present."""
    torch = torch_module()
    wanted = os.environ.get("SMUG_DEVICE")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def convert(proto: onnx.ModelProto):
    """ONNX graph -> torch module in eval mode on the best device (onnx2torch's conversion
    warnings are silenced: they describe its internals, not the user's model)."""
    import warnings

    torch_module()
    from onnx2torch import convert as _convert

    # onnx2torch's own warnings (at conversion and in its converted modules' forward passes)
    warnings.filterwarnings("ignore", category=UserWarning, module="onnx2torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        module = _convert(proto).eval().to(device())
    for p in module.parameters():
        p.requires_grad_(False)
    return module
