"""Reading and writing images with Pillow.

One input path accepts a file path, a PIL image, an ndarray or a tensor, and
always yields an 8-bit RGB PIL image: EXIF rotation applied, transparency
composited onto white, CMYK / 16-bit / float / palette / grayscale converted.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from brushwork.errors import ImageError

ImageInput = Union[str, Path, Image.Image, np.ndarray, torch.Tensor]  # noqa: UP007 - a runtime alias on 3.10

#: Refuse images with more pixels than this before decoding them (decompression bombs).
MAX_PIXELS = 64_000_000

_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


def _open_file(path: Path, what: str) -> Image.Image:
    if not path.exists():
        raise ImageError(f"{what} not found: {path}")
    if path.is_dir():
        raise ImageError(f"{what} is a folder, not an image: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"{what} is empty (0 bytes): {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            try:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageError(
                        f"{what} is {w}x{h} = {w * h / 1e6:.0f} megapixels, over the {MAX_PIXELS / 1e6:.0f} MP "
                        f"limit (possible decompression bomb): {path}"
                    )
                img.load()
            except BaseException:
                img.close()  # do not leave the file open when it cannot be used
                raise
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{what} is too large to decode safely (decompression bomb?): {path}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{what} is not an image Pillow can read: {path}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{what} is corrupt or truncated ({exc}): {path}") from exc
    return img


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing alpha onto white."""
    img = ImageOps.exif_transpose(img) or img
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        if mode == "F" and arr.max() <= 1.0:
            hi = 1.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, mode="L")
        mode = "L"
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, L, 1
    return img


def _from_array(arr: np.ndarray) -> Image.Image:
    """An HxW, HxWx3 or HxWx4 array, uint8 0..255 or float 0..1."""
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageError(f"array of shape {arr.shape} is not an image (want HxW, HxWx3 or HxWx4)")
    if arr.dtype != np.uint8:
        arr = np.clip(np.asarray(arr, dtype=np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return _to_rgb(Image.fromarray(arr))


def load_image(src: ImageInput, what: str = "image") -> Image.Image:
    """Load ``src`` as an 8-bit RGB PIL image.

    ``src`` may be a path, a PIL image, an ``ndarray`` (uint8 0..255 or float 0..1)
    or a tensor ``(3, H, W)`` / ``(1, 3, H, W)`` with values in 0..1.
    ``what`` names the image in error messages ("photo", "style image", ...).
    """
    if isinstance(src, Image.Image):
        return _to_rgb(src)
    if isinstance(src, torch.Tensor):
        from brushwork.image.convert import from_tensor

        return from_tensor(src)
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, (str, Path)):
        return _to_rgb(_open_file(Path(src).expanduser(), what))
    raise ImageError(f"cannot read a {what} from a {type(src).__name__}")


def fit_size(size: tuple[int, int], longest: int | None, allow_upscale: bool = False) -> tuple[int, int]:
    """(width, height) scaled so the longest side is ``longest``, keeping the aspect ratio.

    Without ``allow_upscale`` the image is never enlarged: the original size is kept.
    """
    w, h = size
    if longest is None:
        return w, h
    if longest < 1:
        raise ImageError(f"size must be a positive number of pixels, got {longest}")
    scale = longest / max(w, h)
    if scale > 1 and not allow_upscale:
        return w, h
    return max(1, round(w * scale)), max(1, round(h * scale))


def resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize to (width, height) with Lanczos (good for both shrinking and enlarging)."""
    if img.size == tuple(size):
        return img
    return img.resize(tuple(size), Image.Resampling.LANCZOS)


def save_image(img: Image.Image, path: str | Path, quality: int = 95) -> Path:
    """Write ``img`` to ``path``; the format follows the extension (PNG, JPEG, WebP, TIFF)."""
    path = Path(path).expanduser()
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(
            f"cannot write '{path.suffix or path.name}': use one of {', '.join(sorted(_WRITE_FORMATS))}"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
        img.save(path, fmt, **kwargs)
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
