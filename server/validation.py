"""Checks of a request's raw parts that the pipeline cannot make cheaply in the server process:
the size of a model name and the declared size of an encoded image (a decompression bomb is
refused from its header, before any worker decodes it)."""

from __future__ import annotations

import io
import warnings

from smug.server.errors import invalid, shown

MAX_MODEL_REF = 256  # characters of a model id or name in a request
MAX_IMAGE_PIXELS = 40_000_000  # an encoded image may declare at most this many pixels (e.g. 8000 x 5000)


def check_model_ref(name: str) -> None:
    if len(name) > MAX_MODEL_REF:
        raise invalid(f"the model name {shown(name)} is too long: ids are 64 characters, names at most "
                      f"{MAX_MODEL_REF}")


def check_image(data: bytes) -> None:
    """An encoded image whose header parses and declares at most :data:`MAX_IMAGE_PIXELS` pixels."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's DecompressionBombWarning: judged below
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        raise invalid(f"the image declares more than {MAX_IMAGE_PIXELS} pixels (a decompression bomb?)") from None
    except Exception:  # PIL raises many types for broken headers
        raise invalid("the image is not a readable image (PNG, JPEG, ...)") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise invalid(f"the image declares {width}x{height} pixels; at most {MAX_IMAGE_PIXELS} pixels are accepted")
