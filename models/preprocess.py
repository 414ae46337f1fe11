"""Input preprocessing: image files to model-space arrays, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smug.models.errors import InputError  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class ImagePreprocess:
    """Resize the shorter side to ``resize`` (bicubic), centre-crop ``crop``, then
    ``(pixel - offset) / scale`` on 0-255 values; channels first.  ``resize=None``
    keeps the image size and demands exactly ``crop`` x ``crop``.  ``offset`` and
    ``scale`` may be one number or one per channel."""

    crop: int
    resize: int | None = None
    offset: float | tuple[float, ...] = 0.0
    scale: float | tuple[float, ...] = 255.0
    grayscale: bool = False

    @classmethod
    def from_spec(cls, spec: dict) -> "ImagePreprocess":
        """From a user's description: ``crop`` (required), ``resize``, ``grayscale``, and either
        ``offset``/``scale`` on 0-255 pixels or torchvision's ``mean``/``std`` on 0-1 pixels."""
        known = {"crop", "resize", "offset", "scale", "mean", "std", "grayscale"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise InputError(f"unknown preprocessing keys {unknown}; use {sorted(known)}")
        if "crop" not in spec:
            raise InputError("the preprocessing needs 'crop' (the model's input side in pixels)")
        if ("mean" in spec or "std" in spec) and ("offset" in spec or "scale" in spec):
            raise InputError("give mean/std (0-1 pixels) or offset/scale (0-255 pixels), not both")
        offset = spec.get("offset", 255.0 * np.asarray(spec.get("mean", 0.0), dtype=np.float64))
        scale = spec.get("scale", 255.0 * np.asarray(spec.get("std", 1.0), dtype=np.float64))
        as_value = lambda v: float(v) if np.ndim(v) == 0 else tuple(float(a) for a in np.ravel(v))  # noqa: E731
        offset, scale = as_value(offset), as_value(scale)
        if not np.all(np.isfinite(offset)) or not np.all(np.isfinite(scale)) or np.any(np.asarray(scale) == 0):
            raise InputError("the preprocessing's offset/mean must be finite and its scale/std finite and non-zero")
        crop, resize = spec["crop"], spec.get("resize")
        if not isinstance(crop, int) or crop < 1 or (resize is not None and (not isinstance(resize, int) or resize < 1)):
            raise InputError(f"crop and resize must be positive integers, got crop={crop!r}, resize={resize!r}")
        return cls(crop=crop, resize=resize, offset=offset, scale=scale, grayscale=bool(spec.get("grayscale", False)))

    def load(self, source: str | Path | bytes) -> tuple[np.ndarray, np.ndarray]:
        """(model input (C, H, W) float32, displayable RGB uint8 (H, W, 3)) of an image
        file or of an encoded image's bytes."""
        import io

        from PIL import Image, UnidentifiedImageError

        if isinstance(source, (bytes, bytearray)):
            path, opened = "the image", io.BytesIO(bytes(source))
        else:
            path = opened = Path(source)
            if not path.is_file():
                raise InputError(f"input file not found: {path}")
        try:
            img = Image.open(opened)
            img.load()
        except (UnidentifiedImageError, OSError, ValueError):
            raise InputError(f"{path} is not a readable image") from None
        img = img.convert("L" if self.grayscale else "RGB")
        if self.resize is not None:
            w, h = img.size
            s = self.resize / min(w, h)
            img = img.resize((max(self.crop, round(w * s)), max(self.crop, round(h * s))), Image.BICUBIC)
            w, h = img.size
            left, top = (w - self.crop) // 2, (h - self.crop) // 2
            img = img.crop((left, top, left + self.crop, top + self.crop))
        elif img.size != (self.crop, self.crop):
            raise InputError(f"{path} is {img.size[0]}x{img.size[1]}; this model needs {self.crop}x{self.crop}")
        pixels = np.asarray(img, dtype=np.float32)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        x = ((pixels - np.asarray(self.offset)) / np.asarray(self.scale)).transpose(2, 0, 1).astype(np.float32)
        shown = np.asarray(img.convert("RGB"), dtype=np.uint8)
        return x, shown

    def to_display(self, x: np.ndarray) -> np.ndarray:
        """Model input (C, H, W) back to RGB uint8 (H, W, 3)."""
        pixels = np.asarray(x).transpose(1, 2, 0) * np.asarray(self.scale) + np.asarray(self.offset)
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
        return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels


def check_array(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A user-supplied model-space array: right shape, finite, float32."""
    x = np.asarray(x)
    if x.size == 0:
        raise InputError("the input is empty")
    if x.shape != tuple(shape):
        raise InputError(f"input has shape {x.shape}; the model needs {tuple(shape)}")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"input dtype {x.dtype} is not numeric")
    if not np.all(np.isfinite(x)):
        raise InputError("input contains NaN or Inf")
    return x.astype(np.float32)
