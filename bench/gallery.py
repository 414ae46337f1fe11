"""The pictures of docs/gallery/: what `smug explain` and `smug compare` draw, on the bundled
inputs and two photos of the shared ImageNet sample (skipped when absent).

    python -m smug.bench.gallery
"""

from __future__ import annotations

import argparse

from smug.bench.common import IMAGENET, ROOT
from smug.common import write_atomic
from smug.pipeline import explain
from smug.rendering.compare import comparison_sheet

GALLERY = ROOT / "docs" / "gallery"
PHOTOS = ("n02123597_Siamese_cat.JPEG", "n01440764_tench.JPEG")


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    shown: list[tuple[str, str]] = []
    for name, kw in (("mnist-plain", {}), ("mnist-keep-class", {"keep_class": True}),
                     ("mnist-whole-network", {"method": "whole-network"})):
        e = explain(None, "mnist-mlp", timeout=60, **kw)
        write_atomic(GALLERY / f"{name}.png", e.figure())
        shown.append((name, repr(e)))
    panels = [(m, explain(None, "mnist-mlp", method="smug" if m == "smug_base" else m)) for m in
              ("smug", "smug_base", "gradient", "integrated_gradients", "occlusion")]
    write_atomic(GALLERY / "mnist-compare.png", comparison_sheet(panels))
    shown.append(("mnist-compare", "smug compare --model mnist-mlp --methods smug,smug_base,gradient,"
                                   "integrated_gradients,occlusion"))
    for photo in PHOTOS:
        path = IMAGENET / photo
        if not path.is_file():
            continue
        stem = photo.split("_", 1)[1].split(".")[0].lower()
        for name, kw in ((f"{stem}-plain", {}), (f"{stem}-keep-class", {"keep_class": True})):
            e = explain(str(path), "efficientnet-lite0", timeout=60, **kw)
            write_atomic(GALLERY / f"{name}.png", e.figure())
            shown.append((name, repr(e)))
    text = explain(None, "text-cnn", text="a gorgeous, funny and deeply moving film, let down by a dull ending")
    write_atomic(GALLERY / "text.html", text.files()["explanation.html"])
    shown.append(("text.html", repr(text)))
    lines = ["# Gallery", "", "Made by `python -m smug.bench.gallery` (figures as `smug explain` writes them to "
             "`figure.png`).", ""]
    lines += [f"- [`{n}`]({n if n.endswith('.html') else n + '.png'}): {r}" for n, r in shown]
    write_atomic(GALLERY / "README.md", ("\n".join(lines) + "\n").encode())


if __name__ == "__main__":
    main()
