"""What an explanation returns, and how it is written to disk."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from smug.common import jsonable, write_atomic, write_files  # noqa: F401


@dataclass(frozen=True)
class Explanation:
    """A SMUG explanation of one input (paper 003 Sec. 3), with its certificate."""

    model: str
    input: str
    target: int
    target_name: str
    confidence: float
    config: dict
    status: str  # optimal | feasible | infeasible | unknown
    objective: int | None  # blocks kept by the minimal mask
    lower_bound: int
    n_blocks: int
    proof: str
    mask: np.ndarray | None  # bool (rows, cols) block grid
    pixel_mask: np.ndarray | None  # bool (H, W)
    saliency: np.ndarray  # (H, W) Eq. 4 restricted to the mask
    base_mask: np.ndarray  # bool (rows, cols): SMUG_base
    base_saliency: np.ndarray  # (H, W) Eq. 4 on SMUG_base
    certificate: dict
    masked_prediction: dict  # informative, not a constraint
    ig: dict
    encoding: dict
    timings: dict
    image: np.ndarray = field(repr=False, default=None)  # RGB uint8 for pictures

    @property
    def mask_fraction(self) -> float | None:
        return None if self.pixel_mask is None else float(self.pixel_mask.mean())

    def to_json(self) -> dict:
        skip = {"mask", "pixel_mask", "saliency", "base_mask", "base_saliency", "image"}
        out = {k: v for k, v in asdict(self).items() if k not in skip}
        out["mask_fraction"] = self.mask_fraction
        out["base_size"] = int(self.base_mask.sum())
        out["mask_blocks"] = None if self.mask is None else np.argwhere(self.mask).tolist()
        return out

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write result.json, mask.png, saliency.png and overlay.png (each atomically)."""
        from smug.rendering.pictures import mask_png, overlay_png, saliency_png

        out = Path(out_dir)
        files = {
            "result.json": json.dumps(self.to_json(), indent=2, default=jsonable).encode(),
            "mask.png": mask_png(self.pixel_mask if self.pixel_mask is not None else np.zeros(self.saliency.shape, bool)),
            "saliency.png": saliency_png(self.saliency),
            "overlay.png": overlay_png(self.image, self.saliency),
        }
        return write_files(out, files)
