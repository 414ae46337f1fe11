"""Maps as pictures for side-by-side comparisons (paper 000 Fig. 2 / paper 003 Fig. 1 layout)."""

from __future__ import annotations

import numpy as np

from smug.rendering.pictures import display_scale


def map_picture(saliency: np.ndarray, sparse: bool = False) -> np.ndarray:
    """A map as a grey picture by magnitude: sparse (mask) maps with non-zeros in
    [0.5, 1] as paper 003 Sec. 3.4 shows them, dense maps scaled by their maximum."""
    s = np.abs(np.asarray(saliency, dtype=np.float64))
    if s.ndim == 1:
        side = int(np.ceil(np.sqrt(s.size)))
        s = np.pad(s, (0, side * side - s.size)).reshape(side, side)
    scaled = display_scale(s) if sparse else s / max(float(s.max()), 1e-300)
    return (scaled * 255).astype(np.uint8)


def _tile(array: np.ndarray, title: str, size: int):
    from PIL import Image, ImageDraw

    img = Image.fromarray(array).resize((size, size), Image.NEAREST if array.shape[0] < size else Image.BILINEAR)
    tile = Image.new("RGB", (size, size + 18), "white")
    tile.paste(img.convert("RGB"), (0, 18))
    ImageDraw.Draw(tile).text((4, 3), title[:28], fill="black")
    return tile


def comparison_sheet(panels: list[tuple[str, object]], size: int = 160) -> bytes:
    """PNG: the input, then one map per ``(method, explanation)`` panel (``smug_base``
    shows SMUG's base map), one column each."""
    import io

    from PIL import Image

    tiles = []
    for method, e in panels:
        if method == "smug":
            tiles.append(_tile(map_picture(e.saliency, sparse=True), f"smug ({e.objective} blocks)", size))
        elif method == "smug_base":
            tiles.append(_tile(map_picture(e.base_saliency, sparse=True),
                               f"smug_base ({int(e.base_mask.sum())} blocks)", size))
        else:
            tiles.append(_tile(map_picture(e.saliency), method, size))
    tiles.insert(0, _tile(np.asarray(panels[0][1].picture), "input", size))
    sheet = Image.new("RGB", (size * len(tiles), size + 18), "white")
    for i, t in enumerate(tiles):
        sheet.paste(t, (i * size, 0))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()
