"""Reading and writing images with Pillow.

One input path accepts a file path, a PIL image, an ndarray or a tensor, and
always yields an 8-bit RGB PIL image: EXIF rotation applied, transparency
composited onto white, CMYK / 16-bit / float / palette / grayscale converted.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from brushwork.errors import ImageError

if TYPE_CHECKING:  # pragma: no cover - torch is imported only where a tensor is really used
    import torch

# torch stays out of this module: the torch-free runtime (brushwork.inference) reads and writes through it
ImageInput = Union[str, Path, Image.Image, np.ndarray, "torch.Tensor"]  # Union: a runtime alias on 3.10

#: Refuse images with more pixels than this before decoding them (decompression bombs).
MAX_PIXELS = 64_000_000

_WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


#: The first bytes of a TIFF file (classic and BigTIFF, both byte orders): decoded by libtiff.
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_FD2_LOCK = threading.Lock()


@contextlib.contextmanager
def _captured_c_stderr(enabled: bool) -> Iterator[list[str]]:
    """Collect what C code writes to file descriptor 2 meanwhile (libtiff prints its warnings and errors about
    a damaged TIFF there, bypassing Python), so a bad file still ends in one line; yields the lines, filled
    on exit. Serialized by a lock: two threads swapping fd 2 at once could leave it pointing at a temp file."""
    lines: list[str] = []
    if not enabled:
        yield lines
        return
    with _FD2_LOCK, tempfile.TemporaryFile() as sink:
        with contextlib.suppress(Exception):
            sys.stderr.flush()  # what Python wrote before goes to the real stderr
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 (a daemon): nothing to capture
            yield lines
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(line.strip() for line in sink.read().decode(errors="replace").splitlines() if line.strip())


def _detail(exc: BaseException, extra: list[str]) -> str:
    """The decoder's reason on one line (the last libtiff message too, when there is one)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if extra:  # "tempfile.tif: Using code not yet in table.": the name is Pillow's, not the user's file
        text += f"; libtiff: {re.sub(r'^[^:]*[.]tiff?: ', '', ' '.join(extra[-1].split()))[:160]}"
    return text


def _open_file(path: Path, what: str) -> Image.Image:
    """Open, decode and convert an image file to RGB; any failure of the decoder is one ImageError.

    Whatever Pillow raises on a damaged file (OSError, SyntaxError, ValueError, EOFError, struct.error,
    NotImplementedError for unsupported variants, MemoryError, ...) is the file's fault, not a bug here;
    Pillow's warnings about damaged metadata (corrupt EXIF, tags past the end) are not shown, since the file
    either decodes or ends in the error, and libtiff's messages are kept off the terminal (see above)."""
    if not path.exists():
        raise ImageError(f"{what} not found: {path}")
    if path.is_dir():
        raise ImageError(f"{what} is a folder, not an image: {path}")
    if path.stat().st_size == 0:
        raise ImageError(f"{what} is empty (0 bytes): {path}")
    try:
        with path.open("rb") as f:
            is_tiff = f.read(4) in _TIFF_MAGIC
    except OSError as exc:
        raise ImageError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    img: Image.Image | None = None
    libtiff: list[str] = []
    try:
        with warnings.catch_warnings(), _captured_c_stderr(is_tiff) as libtiff:
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageError(
                    f"{what} is {w}x{h} = {w * h / 1e6:.0f} megapixels, over the {MAX_PIXELS / 1e6:.0f} MP "
                    f"limit (possible decompression bomb): {path}"
                )
            img.load()
            return _to_rgb(img)  # a new image (EXIF rotation, conversion) even when already RGB
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{what} is too large to decode safely (decompression bomb?): {path}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{what} is not an image Pillow can read: {path}") from exc
    except MemoryError as exc:
        size = f" ({img.size[0]}x{img.size[1]})" if img is not None else ""
        raise ImageError(f"{what}{size} does not fit in memory to decode: {path}") from exc
    except NotImplementedError as exc:
        raise ImageError(f"{what} uses a variant of its format Pillow cannot decode ({_detail(exc, libtiff)}): "
                         f"{path}") from exc
    except Exception as exc:  # OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, ...
        raise ImageError(f"{what} is corrupt or truncated ({_detail(exc, libtiff)}): {path}") from exc
    finally:
        if img is not None:
            img.close()  # do not leave the file open for the garbage collector (multi-frame formats keep it)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing alpha onto white."""
    img = ImageOps.exif_transpose(img) or img
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        with np.errstate(invalid="ignore"):  # a float image's signalling NaNs would warn when widened
            arr = np.asarray(img, dtype=np.float64)
        finite = np.isfinite(arr)  # a float image may hold NaN and inf: they must not set the range
        top = float(arr[finite].max()) if finite.any() else 0.0
        hi = 65535.0 if mode.startswith("I;16") or top > 255 else 255.0
        if mode == "F" and top <= 1.0:
            hi = 1.0
        if not finite.all():
            arr = np.where(finite, arr, np.where(arr > 0, hi, 0.0))  # +inf white; NaN and -inf black
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
    torch = sys.modules.get("torch")  # a tensor can only exist where torch is already imported
    if torch is not None and isinstance(src, torch.Tensor):
        from brushwork.image.convert import from_tensor

        return from_tensor(src)
    if isinstance(src, np.ndarray):
        return _from_array(src)
    if isinstance(src, (str, Path)):
        return _open_file(Path(src).expanduser(), what)
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


def save_image(img: Image.Image, path: str | Path, quality: int = 95, *,
               provenance: Mapping[str, Any] | None = None, watermark: bool = True,
               notes: list[str] | None = None) -> Path:
    """Write ``img`` to ``path``; the format follows the extension (PNG, JPEG, WebP, TIFF).

    Just before encoding, the invisible watermark is embedded (``watermark=False``: not) and ``provenance``
    (a :func:`brushwork.provenance.build_provenance` record; None: no metadata) is written into the file.
    An image too small to carry the mark is written unmarked, with a note appended to ``notes``.
    """
    from brushwork import provenance as _prov

    path = Path(path).expanduser()
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(
            f"cannot write '{path.suffix or path.name}': use one of {', '.join(sorted(_WRITE_FORMATS))}"
        )
    img, kwargs, note = _prov.encode(img, fmt, provenance=provenance, watermark=watermark, quality=quality)
    if note and notes is not None and note not in notes:
        notes.append(note)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, fmt, **kwargs)
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
