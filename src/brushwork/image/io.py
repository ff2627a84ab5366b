"""Reading and writing images with Pillow.

One input path accepts a file path, a PIL image, an ndarray or a tensor, and
always yields an 8-bit RGB PIL image: EXIF rotation applied, transparency
composited onto white, CMYK / 16-bit / float / palette / grayscale converted.

Large files are read when the machine can hold them: before anything is decoded, the header's size is
checked against a hard bomb limit (:data:`HARD_MAX_PIXELS`), against the file's own size (a tiny file
claiming a huge image, :data:`MAX_PIXELS_PER_BYTE`) and against the memory the decode will need
(:func:`decode_memory` vs :func:`available_memory`).
"""

from __future__ import annotations

import contextlib
import math
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

from brushwork.errors import BrushworkError, ImageError, ResourceError

if TYPE_CHECKING:  # pragma: no cover - torch is imported only where a tensor is really used
    import torch

# torch stays out of this module: the torch-free runtime (brushwork.inference) reads and writes through it
ImageInput = Union[str, Path, Image.Image, np.ndarray, "torch.Tensor"]  # Union: a runtime alias on 3.10

#: No image over this many pixels is decoded, whatever the memory: a decompression bomb (1 gigapixel).
HARD_MAX_PIXELS = 1_000_000_000
#: The pixel limit in force: the hard limit, unless a caller lowers it (a server's policy, a test).
MAX_PIXELS = HARD_MAX_PIXELS
#: Over this many pixels a file must hold at least one byte per :data:`MAX_PIXELS_PER_BYTE` pixels. Measured
#: on 12 MP images: photos give at most ~150 pixels per byte (JPEG and WebP at quality 10), smooth synthetic
#: gradients up to ~460 (WebP quality 10), a flat colour ~250 (JPEG, whose floor is ~512: one bit per 8x8
#: block) and ~750 (8-bit PNG); only flat 1-bit PNGs (~2400) and flat lossless WebP (~23000) pass 1000, which
#: a photo never is. A crafted file (a huge IHDR over a few bytes) claims millions of pixels per byte.
SPARSE_CHECK_PIXELS = 100_000_000
MAX_PIXELS_PER_BYTE = 1000

#: Pillow warns at 89 MP and refuses at 179 MP, which refuses real 120 MP photos. brushwork guards itself
#: (above), so Pillow's own cap is lifted to the hard limit: its warning then fires only over 1 GP and its
#: error over 2 GP. Set once at import (no window another thread could see); a cap someone set is kept.
_PILLOW_DEFAULT_CAP = 1024 * 1024 * 1024 // 4 // 3  # 89,478,485, as in PIL.Image
if Image.MAX_IMAGE_PIXELS == _PILLOW_DEFAULT_CAP:
    Image.MAX_IMAGE_PIXELS = HARD_MAX_PIXELS

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


# --------------------------------------------------------------------------- memory


#: (limit, usage, stat file, the stat line of reclaimable page cache): cgroup v2, then v1
_CGROUP_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat", "inactive_file"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
     "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file"),
)
_MEMINFO = "/proc/meminfo"


def _read_number(path: str, key: str | None = None) -> int | None:
    """The integer in a one-number file (``key`` given: on the ``key value`` line), or None ("max", absent)."""
    with contextlib.suppress(OSError, ValueError), open(path) as f:
        for line in f:
            parts = line.split()
            if key is None:
                return int(parts[0])
            if len(parts) >= 2 and parts[0].rstrip(":") == key:
                return int(parts[1])
    return None


def available_memory() -> int:
    """Bytes this process can still take: Linux's ``MemAvailable``, lowered to what a container's memory
    limit (cgroup v2 or v1) leaves, since a container sees the host's meminfo; elsewhere the physical
    memory. Free of torch and of the inference package, so the image readers can check a decode with it."""
    kib = _read_number(_MEMINFO, "MemAvailable")
    if kib is not None:
        free = kib * 1024
    else:
        try:
            free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            free = 8 << 30
    for limit_file, usage_file, stat_file, cache_key in _CGROUP_FILES:
        limit, usage = _read_number(limit_file), _read_number(usage_file)
        if limit is None or usage is None or limit >= 1 << 60:  # no limit ("max", or v1's huge number)
            continue
        cache = _read_number(stat_file, cache_key) or 0  # page cache the kernel drops before it kills
        free = min(free, max(0, limit - max(0, usage - cache)))
        break
    return free


_ONE_BYTE_MODES = frozenset({"1", "L", "P"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_DECODE_SLACK = 64 << 20  # decoder state, band buffers (about a million pixels each) and the interpreter
_BAND_PIXELS = 1 << 20


def _stored_bytes(mode: str) -> int:
    """Bytes a pixel takes in Pillow's memory for ``mode`` (RGB too takes 4: Pillow pads it to RGBX)."""
    return 1 if mode in _ONE_BYTE_MODES else 2 if mode.startswith("I;16") else 4


def decode_memory(size: tuple[int, int], mode: str, *, transposed: bool = True, transparency: bool = False,
                  single_frame: bool = True) -> int:
    """Peak bytes :func:`load_image` takes to decode a file of ``size`` and ``mode`` and turn it into RGB.

    The decoded image (in its own mode: 1 byte a pixel for L / P / 1, 2 for 16-bit, 4 for the rest, RGB
    included) plus, at the worst moment, either an EXIF rotation's copy (``transposed``) or what the
    conversion adds (the 4-byte RGB result, an RGBA copy for LA / PA / a palette with ``transparency``, one
    byte of 8-bit gray for 16-bit and float images). An RGB file is handed over without a copy unless it has
    several frames (``single_frame`` False; a GIF counts as such: Pillow keeps its file open). Measured (peak
    RSS, 12 to 120 MP files of each mode): the per-pixel part matches, and what the band-wise conversions add
    beyond it (under 32 MiB) stays within the fixed slack."""
    w, h = size
    stored = _stored_bytes(mode)
    if mode == "RGB":
        conversion = 0 if single_frame else 4
    elif mode in _ALPHA_MODES or (mode == "P" and transparency):
        conversion = 4 if mode == "RGBA" else 8
    elif mode in _HIGH_DEPTH_MODES:
        conversion = 5
    else:
        conversion = 4
    return w * h * (stored + max(stored if transposed else 0, conversion)) + _DECODE_SLACK


def _count(pixels: int) -> str:
    return f"{pixels / 1e6:,.0f} megapixels" if pixels >= 10**6 else f"{pixels:,} pixels"


def _at(where: str) -> str:
    return f": {where}" if where else ""


def check_pixels(size: tuple[int, int], file_bytes: int | None, what: str = "image", where: str = "") -> None:
    """Refuse a decompression bomb from its header, before anything is decoded: more pixels than
    :data:`MAX_PIXELS` (at most :data:`HARD_MAX_PIXELS`), or over :data:`SPARSE_CHECK_PIXELS` with under one
    byte of file per :data:`MAX_PIXELS_PER_BYTE` pixels (a huge header over a few bytes). ``file_bytes``
    None (an image already in memory): the pixel limit only. ``where`` (a path) ends the message."""
    w, h = size
    pixels = w * h
    limit = min(MAX_PIXELS, HARD_MAX_PIXELS)
    if pixels > limit:
        raise ImageError(f"{what} is {w}x{h} = {_count(pixels)}, over the {limit / 1e6:,.0f} MP limit "
                         f"(possible decompression bomb){_at(where)}")
    if file_bytes is not None and pixels > SPARSE_CHECK_PIXELS and file_bytes * MAX_PIXELS_PER_BYTE < pixels:
        raise ImageError(f"{what} claims {w}x{h} = {_count(pixels)} in a file of {file_bytes:,} bytes (under one "
                         f"byte per {MAX_PIXELS_PER_BYTE} pixels): a decompression bomb or a cut-short file, not "
                         f"decoded{_at(where)}")


class ImageMemoryError(ResourceError, ImageError):
    """An image that would not fit in memory to decode: a ResourceError (the machine's limit, not the file's
    fault) that is also an ImageError, which is what callers of the image readers catch."""


def check_decode_memory(size: tuple[int, int], mode: str, what: str = "image", where: str = "", *,
                        available: int | None = None, **kinds: bool) -> None:
    """Refuse, before decoding, an image whose :func:`decode_memory` (``kinds``: its keywords) exceeds
    ``available`` bytes (default: :func:`available_memory`), in one line naming the size and both amounts."""
    need = decode_memory(size, mode, **kinds)
    free = available_memory() if available is None else available
    if need > free:
        w, h = size
        raise ImageMemoryError(f"{what} is {w}x{h} ({_count(w * h)}, {mode}): decoding it needs about "
                               f"{need / 2**30:.1f} GiB of memory but only {free / 2**30:.1f} GiB is available"
                               f"{_at(where)}")


# --------------------------------------------------------------------------- files


def _check_path(path: Path, what: str) -> tuple[bool, int]:
    """Whether the file is a TIFF (libtiff's messages are then captured) and its size in bytes; a missing,
    empty or unreadable file, or a folder, is one ImageError."""
    if not path.exists():
        raise ImageError(f"{what} not found: {path}")
    if path.is_dir():
        raise ImageError(f"{what} is a folder, not an image: {path}")
    try:
        nbytes = path.stat().st_size
        if nbytes == 0:
            raise ImageError(f"{what} is empty (0 bytes): {path}")
        with path.open("rb") as f:
            return f.read(4) in _TIFF_MAGIC, nbytes
    except OSError as exc:
        raise ImageError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc


class _Opened:
    """An image file opened by Pillow; ``keep`` hands the image over to the caller instead of closing it."""

    __slots__ = ("img", "keep")

    def __init__(self, img: Image.Image) -> None:
        self.img, self.keep = img, False


def _bomb_detail(exc: BaseException) -> str:
    """The size and the cap that Pillow's own bomb warning or error names, for the message."""
    m = re.search(r"\((\d+) pixels\)", str(exc))
    cap = Image.MAX_IMAGE_PIXELS
    return f" ({_count(int(m[1]))}, over the limit of {_count(cap)})" if m and cap else ""


@contextlib.contextmanager
def _opened(path: Path, what: str) -> Iterator[_Opened]:
    """The file opened by Pillow, its header read and the bomb guards (:func:`check_pixels`) passed, nothing
    decoded yet; it is closed on exit unless handed over. Whatever Pillow raises meanwhile, in the ``with``
    body too, is one ImageError.

    Whatever Pillow raises on a damaged file (OSError, SyntaxError, ValueError, EOFError, struct.error,
    NotImplementedError for unsupported variants, MemoryError, ...) is the file's fault, not a bug here;
    Pillow's warnings about damaged metadata (corrupt EXIF, tags past the end) are not shown, since the file
    either decodes or ends in the error, and libtiff's messages are kept off the terminal (see above)."""
    is_tiff, nbytes = _check_path(path, what)
    img: Image.Image | None = None
    opened: _Opened | None = None
    libtiff: list[str] = []
    try:
        with warnings.catch_warnings(), _captured_c_stderr(is_tiff) as libtiff:
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL(\.|$)")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
            check_pixels(img.size, nbytes, what, str(path))
            opened = _Opened(img)
            yield opened
    except BrushworkError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{what} is too large to decode safely{_bomb_detail(exc)} (decompression bomb?): "
                         f"{path}") from exc
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
        if img is not None and not (opened is not None and opened.keep):
            img.close()  # do not leave the file open for the garbage collector (multi-frame formats keep it)


_ORIENTATION = 0x0112
_SWAPS_SIDES = (5, 6, 7, 8)  # the orientations that turn the image a quarter (or transpose it)


def _header_orientation(img: Image.Image, header_only: bool = True) -> int:
    """The EXIF orientation (1 = as stored), by default from what Pillow read with the header, decoding nothing.

    Pillow's PNG ``getexif()`` decodes the whole image to look for an eXIf chunk after the pixel data (PNG
    puts it before them), so for a PNG only the metadata read with its header counts (EXIF, else XMP's
    tiff:Orientation, which Pillow honours too), unless not ``header_only``."""
    info = img.info
    if header_only and img.format == "PNG" and "exif" not in info and "Raw profile type exif" not in info:
        xmp = info.get("XML:com.adobe.xmp") or info.get("xmp") or ""
        text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
        m = re.search(r'tiff:Orientation(="|>)([0-9])', text)
        return int(m[2]) if m else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt EXIF: Pillow warns, the image still loads
        try:
            return int(img.getexif().get(_ORIENTATION, 1))
        except Exception:  # EXIF too damaged to read: exif_transpose will not rotate it either
            return 1


def _open_file(path: Path, what: str, at_least: int | None = None) -> Image.Image:
    """Open, check, decode and convert an image file to RGB; any failure of the decoder is one ImageError.

    The bomb guards run on the header (:func:`check_pixels`), then the memory check (:func:`decode_memory`),
    and only then is the file decoded. A single-frame RGB file is rotated in place and handed over itself,
    so a large photo is held once, not twice. ``at_least``: see :func:`load_image`."""
    with _opened(path, what) as opened:
        img = opened.img
        if at_least is not None and img.format == "JPEG" and max(img.size) >= 2 * at_least:
            r = at_least / max(img.size)  # DCT scaling keeps both sides at least the requested ones
            img.draft(None, (math.ceil(img.size[0] * r), math.ceil(img.size[1] * r)))
        # Pillow keeps the file of a multi-frame image (and of any GIF) open for seeking: not handed over
        single = img.mode != "RGB" or (img.format != "GIF" and not getattr(img, "is_animated", False))
        check_decode_memory(img.size, img.mode, what, str(path), transposed=_header_orientation(img) != 1,
                            transparency="transparency" in img.info, single_frame=single)
        img.load()
        out = _to_rgb(img, owned=True)
        if out is img:
            if single:
                opened.keep = True
            else:
                out = img.copy()  # the original and its file are closed on the way out
        return out


def _row_bands(w: int, h: int) -> Iterator[tuple[int, int]]:
    """Row ranges ``[y0, y1)`` of about :data:`_BAND_PIXELS` pixels each."""
    rows = max(1, _BAND_PIXELS // max(1, w))
    for y0 in range(0, h, rows):
        yield y0, min(h, y0 + rows)


def _band_f64(img: Image.Image, y0: int, y1: int) -> np.ndarray:
    with np.errstate(invalid="ignore"):  # a float image's signalling NaNs would warn when widened
        return np.asarray(img.crop((0, y0, img.size[0], y1)), dtype=np.float64)


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float image as 8-bit gray, band by band (a full-size float64 copy would take 8 bytes
    a pixel and its arithmetic as much again). White is 65535 for 16-bit or any value over 255, 1.0 for a float
    image within 0..1, else 255; +inf is white, NaN and -inf black, and they do not set the range."""
    w, h = img.size
    bands = list(_row_bands(w, h))
    top: float | None = None
    for y0, y1 in bands:
        arr = _band_f64(img, y0, y1)
        finite = arr[np.isfinite(arr)]
        if finite.size:
            top = max(float(finite.max()), top if top is not None else -np.inf)
    top = 0.0 if top is None else top
    hi = 65535.0 if img.mode.startswith("I;16") or top > 255 else 255.0
    if img.mode == "F" and top <= 1.0:
        hi = 1.0
    out = Image.new("L", (w, h))
    for y0, y1 in bands:
        arr = _band_f64(img, y0, y1)
        finite = np.isfinite(arr)
        if not finite.all():
            arr = np.where(finite, arr, np.where(arr > 0, hi, 0.0))  # +inf white; NaN and -inf black
        out.paste(Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L"), (0, y0))
    return out


def _to_rgb(img: Image.Image, owned: bool = False) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing alpha onto white, EXIF rotation applied.

    ``owned``: ``img`` is ours (a file just decoded), so it is rotated in place and, when already RGB,
    returned itself. Otherwise it is never changed and the result is always a new image."""
    src = img
    if owned:
        ImageOps.exif_transpose(img, in_place=True)
    elif _header_orientation(img, header_only=False) != 1:
        img = ImageOps.exif_transpose(img) or img  # a rotated copy
    mode = img.mode
    if mode in _HIGH_DEPTH_MODES:
        img, mode = _high_depth_to_l(img), "L"
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in _ALPHA_MODES:
        rgba = img if mode == "RGBA" else img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, (0, 0), rgba)  # = alpha_composite onto white (bit for bit), without its 3 full copies
        return out
    if mode != "RGB":
        return img.convert("RGB")  # CMYK, YCbCr, LAB, HSV, L, 1
    return img if owned or img is not src else img.copy()


def _as_image_array(arr: np.ndarray) -> np.ndarray:
    """An HxW, HxWx3 or HxWx4 view of ``arr`` (CxHxW moved, a single channel dropped), or one ImageError."""
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageError(f"array of shape {arr.shape} is not an image (want HxW, HxWx3 or HxWx4)")
    return arr


def _from_array(arr: np.ndarray) -> Image.Image:
    """An HxW, HxWx3 or HxWx4 array, uint8 0..255 or float 0..1."""
    arr = _as_image_array(arr)
    if arr.dtype != np.uint8:
        arr = np.clip(np.asarray(arr, dtype=np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return _to_rgb(Image.fromarray(arr))


def load_image(src: ImageInput, what: str = "image", at_least: int | None = None) -> Image.Image:
    """Load ``src`` as an 8-bit RGB PIL image.

    ``src`` may be a path, a PIL image, an ``ndarray`` (uint8 0..255 or float 0..1)
    or a tensor ``(3, H, W)`` / ``(1, 3, H, W)`` with values in 0..1.
    ``what`` names the image in error messages ("photo", "style image", ...).
    ``at_least``: the caller shrinks the image to about this longest side anyway, so a JPEG file may be
    decoded at a power-of-two fraction of its size (DCT scaling, 2-4x faster) whose longest side stays at
    least this; other inputs come at full size.
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
        return _open_file(Path(src).expanduser(), what, at_least)
    raise ImageError(f"cannot read a {what} from a {type(src).__name__}")


def image_size(src: ImageInput, what: str = "image") -> tuple[int, int]:
    """The (width, height) :func:`load_image` will give ``src``, EXIF orientation applied, decoding nothing:
    cheap enough to price a whole job before any pixel is read. A file gets load_image's one-line errors
    (missing, not an image, a damaged header, over the pixel limit, a bomb); its memory is checked only when
    it is loaded."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(src, torch.Tensor):  # (3, H, W) or (1, 3, H, W)
        if src.dim() not in (3, 4):
            raise ImageError(f"a tensor of shape {tuple(src.shape)} is not an image (want (3, H, W) or (1, 3, H, W))")
        return int(src.shape[-1]), int(src.shape[-2])
    if isinstance(src, np.ndarray):
        h, w = _as_image_array(src).shape[:2]
        return int(w), int(h)
    if isinstance(src, Image.Image):
        w, h = src.size
        return (h, w) if _header_orientation(src) in _SWAPS_SIDES else (w, h)
    if isinstance(src, (str, Path)):
        with _opened(Path(src).expanduser(), what) as opened:
            w, h = opened.img.size
            return (h, w) if _header_orientation(opened.img) in _SWAPS_SIDES else (w, h)
    raise ImageError(f"cannot read a {what} from a {type(src).__name__}")


#: a mask may be drawn at another size than the photo (it is resized), not in another shape
MASK_ASPECT_TOLERANCE = 0.02


def check_mask_shape(mask_size: tuple[int, int], size: tuple[int, int], what: str = "mask") -> None:
    """One line when a mask's aspect ratio is not the picture's: resizing it would move its regions."""
    (mw, mh), (w, h) = mask_size, size
    if abs((mw / mh) / (w / h) - 1) > MASK_ASPECT_TOLERANCE:
        raise ImageError(f"{what} is {mw}x{mh} but the picture is {w}x{h}: a mask must have the picture's shape "
                         "(any size of the same aspect ratio)")


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
    from brushwork.image.png import encode_png

    path = Path(path).expanduser()
    fmt = _WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(
            f"cannot write '{path.suffix or path.name}': use one of {', '.join(sorted(_WRITE_FORMATS))}"
        )
    img, kwargs, note = _prov.encode(img, fmt, provenance=provenance, watermark=watermark, quality=quality)
    if note and notes is not None and note not in notes:
        notes.append(note)
    data = encode_png(img, kwargs["pnginfo"].chunks if "pnginfo" in kwargs else ()) if fmt == "PNG" else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            img.save(path, fmt, **kwargs)
        else:  # encoded whole before the file is opened: an error cannot leave half a PNG
            path.write_bytes(data)
    except OSError as exc:
        raise ImageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path
