"""Parameters of the encodings and their checks (paper 003's defaults); importing this module
is cheap (numpy only), so a request can be validated before any model library loads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIRECTIONS = ("auto", "positive", "negative")  # text: which score a mask explains (auto: by the rating)
FORMS = ("linear", "affine")


def _is_integer(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_encoding_parameters(top_k, gamma, form, ig_steps, ig_tolerance) -> None:
    """The checks :class:`SmugConfig` and :class:`~smug.encoders.text.TextSmugConfig`
    share; each ``ValueError`` names the parameter.  Bools are not numbers here."""
    if not _is_integer(top_k) or top_k <= 0:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    if not _is_number(gamma) or not np.isfinite(gamma) or not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1), got {gamma!r}")
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    if ig_steps is not None and (not _is_integer(ig_steps) or ig_steps < 1):
        raise ValueError(f"ig_steps must be a positive integer or None (adaptive), got {ig_steps!r}")
    if not _is_number(ig_tolerance) or not np.isfinite(ig_tolerance) or ig_tolerance < 0:
        raise ValueError(f"ig_tolerance must be a finite number >= 0, got {ig_tolerance!r}")


@dataclass(frozen=True)
class SmugConfig:
    """Parameters of the method (defaults: paper 003's ImageNet setting)."""

    top_k: int = 3000
    gamma: float = 0.0
    window: int = 4
    # "linear": W(x*m) > gamma W x (the reference code's conv output before bias/BN);
    # "affine": W(x*m) + b > gamma (W x + b) (Eq. 3 literally).
    form: str = "linear"
    baseline: float = 0.0  # masked-out value in model-input space (0 = mid-grey for Lite0)
    ig_steps: int | None = None  # None: adaptive, doubled until the completeness error fits
    ig_tolerance: float = 0.05

    def __post_init__(self) -> None:
        check_encoding_parameters(self.top_k, self.gamma, self.form, self.ig_steps, self.ig_tolerance)
        if not _is_integer(self.window) or self.window < 1:
            raise ValueError(f"window must be a positive integer, got {self.window!r}")
        if not _is_number(self.baseline) or not np.isfinite(self.baseline):
            raise ValueError(f"baseline (the masked-out value) must be a finite number, got {self.baseline!r}")


@dataclass(frozen=True)
class TextSmugConfig:
    """Parameters (defaults: paper 003's text setting, k = 100, gamma = 0)."""

    top_k: int = 100
    gamma: float = 0.0
    form: str = "linear"
    direction: str = "auto"
    ig_steps: int | None = None  # None: adaptive, doubled until the completeness error fits
    ig_tolerance: float = 0.05

    def __post_init__(self) -> None:
        check_encoding_parameters(self.top_k, self.gamma, self.form, self.ig_steps, self.ig_tolerance)
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")


@dataclass(frozen=True)
class NetworkConfig:
    """Parameters of the whole-network encoding (paper 003 Appendix A, Eq. 6)."""

    window: int = 1
    delta: float = 0.0  # logit margin the masked input keeps over every other class
    baseline: float = 0.0  # masked-out value in model-input space
    min_confidence: float | None = None  # also keep softmax(target) >= this (folded into delta)

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, (int, np.integer)) or self.window < 1:
            raise ValueError(f"window must be a positive integer, got {self.window}")
        if not np.isfinite(self.delta) or self.delta < 0:
            raise ValueError(f"delta must be finite and >= 0, got {self.delta}")
        if not np.isfinite(self.baseline):
            raise ValueError(f"the masked-out value (baseline) must be finite, got {self.baseline}")
        if self.min_confidence is not None and not 0.0 < self.min_confidence < 1.0:
            raise ValueError(f"min_confidence must lie in (0, 1), got {self.min_confidence}")
