"""smug: provably minimal input masks that explain a classifier's decision.

SMUG (paper 003): Integrated Gradients on the first layer's activations picks the
neurons that matter, an exact solver finds the smallest set of input blocks that
keeps them active, and every answer comes with an exactly checked certificate.

    >>> import smug
    >>> e = smug.explain("cat.jpg", model="efficientnet-lite0", out_dir="out")

:func:`explain` is :func:`smug.pipeline.explain`; requests, the runner and the answer
type live in :mod:`smug.pipeline`.
"""

__version__ = "0.1.0"

__all__ = ["explain", "__version__"]


def __getattr__(name: str):
    """``smug.explain`` is :func:`smug.pipeline.explain`, imported on first use so that ``import smug``
    stays cheap; its signature spells out the request's parameters (``help(smug.explain)``)."""
    if name == "explain":
        from smug.pipeline import explain

        return explain
    raise AttributeError(f"module 'smug' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})  # explain too, before its first use (tab completion)
