"""A picture sheet, drawn with Pillow: title lines, a grid of panels and the colour rules under it.

Every picture smug writes is a :class:`Sheet` (an answer's ``figure.png``, ``smug compare``'s grid,
the robust picture), so they share one look and one renderer.  A panel is an RGB picture already
coloured (:mod:`smug.rendering.pictures`), shown at :data:`PANEL_PX` on its longer side (small
inputs as square pixels, photos smoothly), under its caption, optionally with

* a mask's border in red (the pixels where the mask changes, one pixel either side),
* one pixel ringed in black,
* a colour bar beside it (its colour map from top = ``hi`` to bottom = ``lo``, three ticks, the
  scale's label above it).

Sheets are plain data (the words a test or a screen reader checks are :attr:`Sheet.words`); only
:func:`render` touches pixels.  Text is Pillow's bundled scalable font at :data:`FONT_PX` (12 pt).
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass

import numpy as np

from smug.rendering.colormap import MapScale, colorize

PANEL_PX = 320  # a panel's longer side
FONT_PX = 16  # every text: 12 pt at 96 dpi
LINE_PX = 21  # a line of text
PAD = 14  # around the sheet and between cells
BAR_PX = 16  # a colour bar's width
TICKS_PX = 74  # room right of a bar for its tick labels
SMOOTH_FROM = 64  # inputs at least this large are scaled smoothly, smaller ones as square pixels
RED = (220, 20, 20)
BLACK = (0, 0, 0)
TEXT = (20, 20, 20)


@dataclass(frozen=True)
class Panel:
    """One picture of a sheet: ``picture`` (H, W, 3) uint8 under ``caption`` (``\\n`` breaks lines);
    ``outline``: an (H, W) mask whose border is drawn in red; ``ring``: a (row, column) ringed in
    black; ``scale``: the colour bar drawn beside the panel."""

    caption: str
    picture: np.ndarray
    outline: np.ndarray | None = None
    ring: tuple[int, int] | None = None
    scale: MapScale | None = None

    def __post_init__(self) -> None:
        p = np.asarray(self.picture)
        if p.ndim != 3 or p.shape[2] != 3 or p.dtype != np.uint8:
            raise ValueError(f"a panel's picture is (H, W, 3) uint8, not {p.shape} {p.dtype}")
        if self.outline is not None and np.shape(self.outline) != p.shape[:2]:
            raise ValueError(f"the outline's shape {np.shape(self.outline)} is not the picture's {p.shape[:2]}")
        if self.ring is not None and not (0 <= self.ring[0] < p.shape[0] and 0 <= self.ring[1] < p.shape[1]):
            raise ValueError(f"the ringed pixel {self.ring} is outside the picture {p.shape[:2]}")


@dataclass(frozen=True)
class Sheet:
    """``title`` lines, the ``panels`` on a grid of ``columns``, the colour ``rules`` under it (each once:
    repeats are dropped here, so callers list a rule per panel)."""

    title: tuple[str, ...]
    panels: tuple[Panel, ...]
    rules: tuple[str, ...] = ()
    columns: int = 0  # 0: one row

    def __post_init__(self) -> None:
        if not self.panels:
            raise ValueError("a sheet has at least one panel")
        if self.columns < 0:
            raise ValueError(f"columns must be >= 0, not {self.columns}")
        object.__setattr__(self, "rules", tuple(dict.fromkeys(self.rules)))

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of the panel grid."""
        cols = self.columns or len(self.panels)
        return math.ceil(len(self.panels) / cols), cols

    @property
    def words(self) -> str:
        """Every text on the sheet, in reading order (titles, captions, bar labels, rules)."""
        texts = [*self.title]
        for p in self.panels:
            texts += [p.caption.replace("\n", " "), *([p.scale.label] if p.scale else [])]
        return " ".join([*texts, *self.rules])


@functools.cache
def font():
    """Pillow's bundled scalable font at :data:`FONT_PX` (a bitmap font where Pillow has no FreeType)."""
    from PIL import ImageFont

    return ImageFont.load_default(size=FONT_PX)


def wrap(text: str, width_px: int) -> list[str]:
    """``text`` broken at spaces (and at its own newlines) into lines at most ``width_px`` wide."""
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and font().getlength(trial) > width_px:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


def panel_size(picture: np.ndarray) -> tuple[int, int]:
    """(width, height) in pixels of a picture shown at :data:`PANEL_PX` on its longer side."""
    h, w = np.shape(picture)[:2]
    s = PANEL_PX / max(h, w)
    return max(1, round(w * s)), max(1, round(h * s))


def resized(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``picture`` at ``size`` (width, height): square pixels for small inputs, smooth for photos."""
    from PIL import Image

    smooth = max(np.shape(picture)[:2]) >= SMOOTH_FROM
    img = Image.fromarray(np.ascontiguousarray(picture)).resize(size, Image.BILINEAR if smooth else Image.NEAREST)
    return np.asarray(img)


def border(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The pixels (at ``size``) where the scaled-up ``mask`` changes, one pixel either side; none
    where the mask is empty or full (nothing to outline)."""
    m = np.asarray(mask, bool)
    w, h = size
    up = m[(np.arange(h) * m.shape[0]) // h][:, (np.arange(w) * m.shape[1]) // w]
    edge = np.zeros_like(up)
    if m.any() and not m.all():
        vertical, horizontal = up[1:] != up[:-1], up[:, 1:] != up[:, :-1]
        edge[1:] |= vertical
        edge[:-1] |= vertical
        edge[:, 1:] |= horizontal
        edge[:, :-1] |= horizontal
    return edge


def cell_width(panel: Panel) -> int:
    return panel_size(panel.picture)[0] + (PAD // 2 + BAR_PX + TICKS_PX if panel.scale else 0)


def tick(value: float) -> str:
    return "0" if value == 0 else f"{value:.3g}"


def draw_bar(canvas, draw, scale: MapScale, x: int, y: int, height: int) -> None:
    """The colour bar of ``scale`` at (x, y): its label above, ``hi`` at the top, ``lo`` at the bottom."""
    from PIL import Image

    column = colorize(np.linspace(1.0, 0.0, height), scale.cmap)[:, None, :].repeat(BAR_PX, axis=1)
    canvas.paste(Image.fromarray(np.ascontiguousarray(column)), (x, y))
    draw.rectangle((x - 1, y - 1, x + BAR_PX, y + height), outline=BLACK)
    draw.text((x, y - 11), scale.label, fill=TEXT, font=font(), anchor="ld")
    mid = (scale.lo + scale.hi) / 2
    for value, at in ((scale.hi, y), (mid, y + height // 2), (scale.lo, y + height)):
        draw.line((x + BAR_PX, at, x + BAR_PX + 4, at), fill=BLACK)
        draw.text((x + BAR_PX + 7, at), tick(value), fill=TEXT, font=font(), anchor="lm")


def draw_panel(canvas, draw, panel: Panel, x: int, y: int) -> None:
    """The panel's picture at (x, y) with its outline, ring and colour bar."""
    from PIL import Image

    size = panel_size(panel.picture)
    pixels = resized(panel.picture, size).copy()
    if panel.outline is not None:
        pixels[border(panel.outline, size)] = RED
    canvas.paste(Image.fromarray(pixels), (x, y))
    draw.rectangle((x - 1, y - 1, x + size[0], y + size[1]), outline=(136, 136, 136))
    if panel.ring is not None:
        h, w = np.shape(panel.picture)[:2]
        cx, cy = x + (panel.ring[1] + 0.5) * size[0] / w, y + (panel.ring[0] + 0.5) * size[1] / h
        r = max(8.0, 0.8 * size[0] / w)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=BLACK, width=2)
    if panel.scale is not None:
        draw_bar(canvas, draw, panel.scale, x + size[0] + PAD // 2, y, size[1])


def render(sheet: Sheet):
    """The sheet as a Pillow RGB image (see the module docstring for the layout)."""
    from PIL import Image, ImageDraw

    rows, cols = sheet.grid
    grid = [sheet.panels[r * cols:(r + 1) * cols] for r in range(rows)]
    width = max(9 * PANEL_PX // 3, max(sum(cell_width(p) for p in row) + PAD * (len(row) + 1) for row in grid))
    title = [line for text in sheet.title for line in wrap(text, width - 2 * PAD)]
    rules = [line for text in sheet.rules for line in wrap(text, width - 2 * PAD)]
    captions = [[wrap(p.caption, max(cell_width(p), PANEL_PX)) for p in row] for row in grid]
    heads = [max(len(c) for c in row) * LINE_PX + (LINE_PX if any(p.scale for p in panels) else 0)
             for row, panels in zip(captions, grid)]
    bodies = [max(panel_size(p.picture)[1] for p in row) for row in grid]
    height = PAD + len(title) * LINE_PX + sum(heads) + sum(bodies) + PAD * (rows + 1) + len(rules) * LINE_PX + PAD
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y = PAD
    for line in title:
        draw.text((width // 2, y), line, fill=TEXT, font=font(), anchor="ma")
        y += LINE_PX
    for row, lines, head, body in zip(grid, captions, heads, bodies):
        y += PAD
        x = (width - sum(cell_width(p) for p in row) - PAD * (len(row) - 1)) // 2
        for panel, caption in zip(row, lines):
            pw = panel_size(panel.picture)[0]
            for i, line in enumerate(caption):
                draw.text((x + pw // 2, y + i * LINE_PX), line, fill=TEXT, font=font(), anchor="ma")
            draw_panel(canvas, draw, panel, x, y + head)
            x += cell_width(panel) + PAD
        y += head + body
    y += PAD
    for line in rules:
        draw.text((width // 2, y), line, fill=TEXT, font=font(), anchor="ma")
        y += LINE_PX
    return canvas


def png(sheet: Sheet) -> bytes:
    """PNG bytes of :func:`render`."""
    buf = io.BytesIO()
    render(sheet).save(buf, format="PNG")
    return buf.getvalue()
