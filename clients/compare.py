"""Baseline methods from the CLI and a side-by-side comparison figure (paper 000 Fig. 2
layout: the input, then each method's map, one column each)."""

from __future__ import annotations

import io

import numpy as np

from smug.rendering.pictures import display_scale


def baseline_result(source, model: str, method: str, target: int | None = None) -> dict:
    """Run one registered baseline on an input; JSON-ready result plus the map."""
    from smug.baselines.attribution import attribute
    from smug.clients.api import load_input

    m, entry, x, picture, label = load_input(model, source)
    att = attribute(m, x, target=target, method=method)
    return {"model": m.name, "input": label, "method": att.method, "target": att.target,
            "params": att.params, "seconds": att.seconds, "map": att.map, "image": picture}


def _tile(array: np.ndarray, title: str, size: int) -> "Image.Image":
    from PIL import Image, ImageDraw

    img = Image.fromarray(array).resize((size, size), Image.NEAREST if array.shape[0] < size else Image.BILINEAR)
    tile = Image.new("RGB", (size, size + 18), "white")
    tile.paste(img.convert("RGB"), (0, 18))
    ImageDraw.Draw(tile).text((4, 3), title[:28], fill="black")
    return tile


def map_picture(saliency: np.ndarray, sparse: bool = False) -> np.ndarray:
    """A map as a grey picture by magnitude: sparse (mask) maps with non-zeros in
    [0.5, 1] as paper 003 Sec. 3.4 shows them, dense maps scaled by their maximum."""
    s = np.abs(np.asarray(saliency, dtype=np.float64))
    if s.ndim == 1:
        side = int(np.ceil(np.sqrt(s.size)))
        s = np.pad(s, (0, side * side - s.size)).reshape(side, side)
    scaled = display_scale(s) if sparse else s / max(float(s.max()), 1e-300)
    return (scaled * 255).astype(np.uint8)


def comparison_png(source, model: str, methods: list[str], size: int = 160, **smug_params) -> tuple[bytes, dict]:
    """PNG with the input and every method's map side by side; also the timings."""
    from PIL import Image

    from smug.clients.api import explain

    tiles, seconds, picture, e = [], {}, None, None
    for method in methods:
        if method in ("smug", "smug_base"):
            e = e or explain(source, model=model, **smug_params)  # one SMUG run serves both maps
            picture = e.image
            tiles.append(_tile(map_picture(e.saliency if method == "smug" else e.base_saliency, sparse=True),
                               f"smug ({e.objective} blocks)" if method == "smug" else
                               f"smug_base ({int(e.base_mask.sum())} blocks)", size))
            seconds[method] = e.timings["total"]
        else:
            r = baseline_result(source, model, method)
            picture = r["image"]
            tiles.append(_tile(map_picture(r["map"]), method, size))
            seconds[method] = r["seconds"]
    tiles.insert(0, _tile(np.asarray(picture), "input", size))
    sheet = Image.new("RGB", (size * len(tiles), size + 18), "white")
    for i, t in enumerate(tiles):
        sheet.paste(t, (i * size, 0))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue(), seconds
