"""Uploaded images, decoded safely: bytes only (never a path), the format sniffed by Pillow from the
content (not the file name), the pixel count checked from the header before anything is decoded.
"""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

#: what the studio accepts; TIFF is left out (libtiff writes its complaints to the server's terminal)
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")


class WebError(Exception):
    """A client error answered as ``{"error": message}`` with HTTP ``status``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def decode_image(data: bytes, what: str, max_pixels: int) -> Image.Image:
    """8-bit RGB from uploaded bytes; a bomb (too many pixels) is refused from its header (413), a file
    that is not an image 415, a damaged one 422, each in one line."""
    from brushwork.image.io import load_image

    if not data:
        raise WebError(400, f"{what} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError as exc:  # Pillow's own cap, far above ours: same answer
        raise WebError(413, f"{what} is too large to decode safely: {_one_line(exc)}") from None
    except UnidentifiedImageError:
        raise WebError(415, f"{what} is not an image (accepted: JPEG, PNG, WebP, BMP, GIF)") from None
    except Exception as exc:
        raise WebError(422, f"{what} is corrupt: {_one_line(exc)}") from None
    w, h = img.size
    if w * h > max_pixels:
        raise WebError(413, f"{what} is {w}x{h} = {w * h / 1e6:.0f} megapixels, over this server's "
                            f"{max_pixels / 1e6:.0f} MP limit")
    if w < 1 or h < 1:
        raise WebError(422, f"{what} has no pixels ({w}x{h})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img.load()
            return load_image(img, what=what)
    except MemoryError:
        raise WebError(413, f"{what} ({w}x{h}) does not fit in memory to decode") from None
    except Exception as exc:  # truncated data, bad chunks: the file's fault
        raise WebError(422, f"{what} is corrupt or truncated: {_one_line(exc)}") from None
    finally:
        img.close()


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]
