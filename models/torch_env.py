"""torch with smug's settings: its thread policy, full float32 on GPUs, and the device to run on.
Below every torch user of :mod:`smug.models` (the conversion, the graph evaluator, the fast paths)."""

from __future__ import annotations

import os


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
