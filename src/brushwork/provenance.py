"""Outputs that say where they came from: an invisible watermark and provenance metadata.

Every image brushwork writes carries, by default, a watermark whose fixed payload says "made with
brushwork" and a small provenance record (version, method, model name and sha256, style names or
hashes, settings, date; never a path or anything personal). Only numpy and Pillow are used, so the
torch-free runtime writes marked images too.

**Watermark** (frequency domain, spread spectrum): the luminance is read at a canonical scale (longest
side :data:`CANON` px, never enlarged) and cut into 8x8 blocks; fifteen mid-band DCT coefficients of
every block get ``±alpha`` (a little more in busy blocks, less in flat ones), following a fixed
pseudo-random tile of :data:`TILE` x :data:`TILE` blocks whose signs also carry the 32 payload bits
(each repeated 360 times). The change is scaled back to the image's size and added equally to R, G and
B, so colours do not shift.

Detection correlates the blocks' (locally normalised) coefficients with the tile, trying every pixel
offset and cyclic tile shift (a crop moves the grid) and a few scales (resizes and crops change it). The
score is a z-value (on an unmarked image each trial is about standard normal; the best of ~20k trials on
real photos stays under 6), :data:`Z_THRESHOLD` keeps false positives at zero (measured in
benchmarks/bench_watermark.py), and ``confidence`` maps z to 0..1 around that threshold.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import html
import io
import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

PAYLOAD_TEXT = "made with brushwork"
#: 32 bits that stand for the payload text (the first 4 bytes of its sha256)
PAYLOAD_BITS = np.unpackbits(np.frombuffer(hashlib.sha256(PAYLOAD_TEXT.encode()).digest()[:4], np.uint8))
CANON = 512  # the watermark lives at this longest side (smaller images: their own size)
BLOCK = 8
TILE = 8  # the pattern repeats every TILE x TILE blocks, so a crop only shifts it
#: mid-band DCT coefficients (u + v = 3..5): survive JPEG and resizing, carry little visible energy
COEFS = tuple((u, s - u) for s in (3, 4, 5) for u in range(s + 1))
ALPHA = 2.2  # base coefficient change, in 0..255 pixel units (orthonormal DCT)
MIN_SIDE = 64  # canonical short side below which there are too few blocks for a reliable mark
SCALES = (1.0, 0.95, 0.9, 0.85, 0.8)  # canonical sizes tried: 1 = no crop, 0.9 = a 10% crop
Z_THRESHOLD = 8.0
_EARLY_Z = 16.0  # stop searching once a trial is this sure
_SEED = 0x62727368  # "brsh": the pattern, fixed forever (numpy's PCG64 stream is stable)
METADATA_KEY = "brushwork"
_XMP_NS = "https://github.com/brushwork/brushwork/ns/provenance/1.0/"


def _dct_basis() -> np.ndarray:
    """``(len(COEFS), 64)``: the orthonormal 8x8 DCT-II basis images of the coefficients used."""
    i = np.arange(BLOCK)
    d = np.cos((2 * i[None, :] + 1) * i[:, None] * np.pi / (2 * BLOCK)) * math.sqrt(2 / BLOCK)
    d[0] /= math.sqrt(2)
    return np.stack([np.outer(d[u], d[v]).ravel() for u, v in COEFS])


def generate_pattern() -> tuple[np.ndarray, np.ndarray]:
    """The noise ``(TILE, TILE, K)`` of ±1 and the payload bit each chip carries, drawn from numpy's PCG64
    stream at :data:`_SEED`. :data:`PATTERN_FILE` holds the result: importing ``numpy.random`` costs ~15 ms of
    every command's start-up."""
    rng = np.random.default_rng(_SEED)
    shape = (TILE, TILE, len(COEFS))
    noise = rng.choice(np.array([-1.0, 1.0]), size=shape)
    return noise, (rng.permutation(noise.size) % PAYLOAD_BITS.size).reshape(shape)


#: :func:`generate_pattern`'s noise signs (int8) then bit indices (uint8); a test keeps them equal
PATTERN_FILE = Path(__file__).with_name("watermark_pattern.bin")


def _pattern() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tile ``(TILE, TILE, K)`` of ±1 chips (pseudo-noise times payload bit), the noise, the bit index."""
    shape = (TILE, TILE, len(COEFS))
    raw = np.fromfile(PATTERN_FILE, dtype=np.uint8)
    noise = raw[: raw.size // 2].view(np.int8).astype(np.float64).reshape(shape)
    bit_of = raw[raw.size // 2:].astype(np.int64).reshape(shape)
    return noise * (2.0 * PAYLOAD_BITS[bit_of] - 1.0), noise, bit_of


_BASIS = _dct_basis()
_TILE_CHIPS, _NOISE, _BIT_OF = _pattern()


@dataclass(frozen=True)
class Detection:
    """What :func:`detect_watermark` found: ``z`` (standard deviations above chance), ``confidence`` (a
    logistic of z around the threshold), how many of the 32 payload bits read back, and at which canonical size."""

    detected: bool
    confidence: float
    z: float
    bits_ok: int
    payload: str | None
    scale: int | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------------------ watermark


def _luma(arr: np.ndarray) -> np.ndarray:
    a = arr.astype(np.float32)
    return a if a.ndim == 2 else a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def _resize_f(plane: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """A float plane resized to (w, h)."""
    if plane.shape[::-1] == size:
        return plane
    return np.asarray(Image.fromarray(plane, mode="F").resize(size, resample), dtype=np.float32)


def _canonical_size(w: int, h: int, longest: int) -> tuple[int, int]:
    s = min(1.0, longest / max(w, h))
    return max(1, round(w * s)), max(1, round(h * s))


def _blocks(plane: np.ndarray) -> np.ndarray:
    """``(nby, nbx, 64)`` 8x8 blocks of the plane's top-left whole blocks."""
    nby, nbx = plane.shape[0] // BLOCK, plane.shape[1] // BLOCK
    p = plane[: nby * BLOCK, : nbx * BLOCK]
    return p.reshape(nby, BLOCK, nbx, BLOCK).transpose(0, 2, 1, 3).reshape(nby, nbx, BLOCK * BLOCK)


_BAND_PIXELS = 1 << 20  # the full-size work is done in bands of rows of about a million pixels


def _row_bands(w: int, h: int) -> list[tuple[int, int]]:
    rows = max(1, _BAND_PIXELS // max(1, w))
    return [(y0, min(h, y0 + rows)) for y0 in range(0, h, rows)]


def _residual_image(luma: Image.Image) -> Image.Image | None:
    """The change to add to a luminance image (mode F, 0..255) at its own size, as a mode F image, or None
    when it is too small to carry the mark."""
    w, h = luma.size
    cw, ch = _canonical_size(w, h, CANON)
    if min(cw, ch) < MIN_SIDE:
        return None
    canon = np.asarray(luma if (cw, ch) == (w, h) else luma.resize((cw, ch), Image.Resampling.BOX),
                       dtype=np.float32)
    blocks = _blocks(canon)
    nby, nbx = blocks.shape[:2]
    activity = blocks.std(axis=2)  # busy blocks hide more (a light form of perceptual masking)
    gain = np.clip(0.6 + activity / 20.0, 0.6, 1.6)
    chips = np.tile(_TILE_CHIPS, (-(-nby // TILE), -(-nbx // TILE), 1))[:nby, :nbx]
    res_blocks = (chips * (ALPHA * gain)[..., None]) @ _BASIS  # (nby, nbx, 64)
    res = np.zeros((ch, cw), np.float32)
    res[: nby * BLOCK, : nbx * BLOCK] = (res_blocks.reshape(nby, nbx, BLOCK, BLOCK).transpose(0, 2, 1, 3)
                                         .reshape(nby * BLOCK, nbx * BLOCK))
    res_img = Image.fromarray(res, mode="F")
    return res_img if (cw, ch) == (w, h) else res_img.resize((w, h), Image.Resampling.BICUBIC)


def watermark_residual(luma: np.ndarray) -> np.ndarray | None:
    """The change to add to a luminance plane ``(H, W)`` in 0..255, or None when it is too small."""
    res = _residual_image(Image.fromarray(np.ascontiguousarray(luma, dtype=np.float32), mode="F"))
    return None if res is None else np.asarray(res, dtype=np.float32)


def embed_watermark(img: Image.Image) -> tuple[Image.Image, str | None]:
    """``img`` with the watermark in it, and a note when it could not be embedded (too small, an odd
    mode): the image is then returned unchanged, never refused. Alpha is kept as it is.

    ``img`` is never changed. Beyond itself a large image costs its luminance, the residual (4 bytes a pixel
    each, one at a time) and the marked copy; the colour planes are changed in 16-bit bands of rows."""
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        return img, f"no watermark: image mode {img.mode} is not supported"
    w, h = img.size
    res = _residual_image(img.convert("F"))  # Pillow's luma (0.299, 0.587, 0.114) in one pass
    if res is None:
        return img, (f"no watermark: {img.size[0]}x{img.size[1]} is too small to carry one "
                     f"(needs a short side of {MIN_SIDE} px at {CANON} px long)")
    src = np.asarray(img)
    out = np.empty_like(src)
    n = 1 if img.mode == "LA" else 3
    for y0, y1 in _row_bands(w, h):
        # round(pixel + r) is pixel + round(r) for whole pixels: the rounding is done once, in 16 bits after
        r = np.floor(np.asarray(res.crop((0, y0, w, y1)), dtype=np.float32) + 0.5).astype(np.int16)
        band = src[y0:y1].astype(np.int16)
        if band.ndim == 2:
            band += r
        else:
            band[..., :n] += r[..., None]
        np.clip(band, 0, 255, out=band)
        out[y0:y1] = band
    marked = Image.fromarray(out, mode=img.mode)
    marked.info.update(img.info)  # a colour profile, resolution, ... travel with the pixels
    return marked, None


def _fold(coefs: np.ndarray) -> np.ndarray:
    """Sum the blocks that share a tile position: ``(nby, nbx, K)`` -> ``(TILE, TILE, K)``."""
    nby, nbx, k = coefs.shape
    py, px = -nby % TILE, -nbx % TILE
    padded = np.pad(coefs, ((0, py), (0, px), (0, 0)))
    return padded.reshape(-1, TILE, padded.shape[1] // TILE, TILE, k).sum(axis=(0, 2))


@functools.cache
def _tile_fft() -> np.ndarray:
    """The pattern's spectrum, for detection only (not computed at import: every command imports this)."""
    return np.fft.fft2(_TILE_CHIPS, axes=(0, 1))


def _score(canon: np.ndarray) -> tuple[float, int, tuple[int, int, int, int]]:
    """Best z over the 8x8 pixel offsets and TILE x TILE shifts of one canonical plane; its bits read
    back and its (offset y, x, shift y, x)."""
    best = (-np.inf, 0, (0, 0, 0, 0))
    for oy in range(BLOCK):
        for ox in range(BLOCK):
            blocks = _blocks(canon[oy:, ox:])
            if blocks.shape[0] < 2 or blocks.shape[1] < 2:
                continue
            c = blocks @ _BASIS.T
            c /= np.sqrt((c * c).mean(axis=2, keepdims=True) + 1.0)  # each block counts about the same
            folded = _fold(c)
            corr = np.fft.ifft2(np.conj(np.fft.fft2(folded, axes=(0, 1))) * _tile_fft(), axes=(0, 1)).real.sum(2)
            sy, sx = np.unravel_index(int(np.argmax(corr)), corr.shape)
            z = float(corr[sy, sx] / math.sqrt(float((c * c).sum()) + 1e-12))
            if z > best[0]:
                aligned = np.roll(folded, (int(sy), int(sx)), axis=(0, 1)) * _NOISE
                votes = np.bincount(_BIT_OF.ravel(), weights=aligned.ravel(), minlength=PAYLOAD_BITS.size)
                best = (z, int(((votes > 0) == PAYLOAD_BITS.astype(bool)).sum()), (oy, ox, int(sy), int(sx)))
    return best


def confidence(z: float) -> float:
    """A 0..1 score from z: a logistic centred on :data:`Z_THRESHOLD` (0.5 there, 0.02 at the z that unmarked
    photos reach at most, 0.999 at threshold + 3.5). The Gaussian p-value would be too sure: natural images
    have heavier tails than the normal, and the ~20k trials are correlated."""
    return round(1.0 / (1.0 + math.exp(-2.0 * (z - Z_THRESHOLD))), 4)


def detect_watermark(img: Image.Image) -> Detection:
    """Look for brushwork's watermark in ``img`` (any mode, any size it was resized or cropped to)."""
    rgb = img.convert("RGB") if img.mode not in ("RGB", "L") else img
    luma = _luma(np.asarray(rgb))
    h, w = luma.shape
    longest = max(w, h)
    bases = [min(longest, CANON)] + ([min(2 * longest, CANON)] if longest < CANON else [])
    sizes = list(dict.fromkeys(round(b * f) for b in bases for f in SCALES))
    best_z, best_bits, best_size = -np.inf, 0, None
    for target in sizes:
        cw, ch = max(1, round(w * target / longest)), max(1, round(h * target / longest))
        if min(cw, ch) < MIN_SIDE // 2:
            continue
        resample = Image.Resampling.BOX if target <= longest else Image.Resampling.BICUBIC
        z, bits, _ = _score(_resize_f(luma, (cw, ch), resample))
        if z > best_z:
            best_z, best_bits, best_size = z, bits, target
        if best_z >= _EARLY_Z:
            break
    if best_size is None:
        return Detection(False, 0.0, 0.0, 0, None, None, f"{w}x{h} is too small to look for a watermark")
    found = best_z >= Z_THRESHOLD
    return Detection(found, confidence(best_z), round(best_z, 2), best_bits,
                     PAYLOAD_TEXT if found and best_bits >= 24 else None, best_size)


# ------------------------------------------------------------------------------------------ metadata


_hash_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file (for a model folder: of its ``model.safetensors``, else of its files in order)."""
    p = Path(path)
    if p.is_dir():
        weights = p / "model.safetensors"
        files = [weights] if weights.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    else:
        files = [p]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        key = (str(f.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _hash_cache:
            fh = hashlib.sha256()
            with f.open("rb") as stream:
                for chunk in iter(lambda s=stream: s.read(1 << 20), b""):
                    fh.update(chunk)
            _hash_cache[key] = fh.hexdigest()
        if len(files) == 1:
            return _hash_cache[key]
        h.update(_hash_cache[key].encode())
    return h.hexdigest()


def _looks_like_path(text: str) -> bool:
    return "/" in text or "\\" in text or Path(text).expanduser().exists()


def _safe(value: Any) -> Any:
    """A setting as it may be recorded: numbers and words kept; a file becomes its sha256; any other
    path-like string (a folder, a missing file) is dropped (None), so no path is ever written."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, Path) or (isinstance(value, str) and _looks_like_path(value)):
        p = Path(value).expanduser()
        return {"sha256": file_sha256(p)} if p.is_file() else None
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    return None


def style_entry(style: Any, weight: float = 1.0) -> dict[str, Any]:
    """A style as it is recorded: a preset's name, or the sha256 of a painting file (never its path); an
    image in memory (an upload) by the sha256 of its pixels."""
    if not isinstance(style, (str, Path)):
        data = style.tobytes() if hasattr(style, "tobytes") else repr(style).encode()
        return {"sha256": hashlib.sha256(data).hexdigest(), "weight": weight}
    p = Path(style).expanduser()
    if p.is_file():
        return {"sha256": file_sha256(p), "weight": weight}
    return {"name": str(style) if not _looks_like_path(str(style)) else None, "weight": weight}


def build_provenance(method: str, styles: Iterable[tuple[str, float]] = (), *, model: str | None = None,
                     model_files: Iterable[str | Path] = (), settings: Mapping[str, Any] | None = None,
                     version: str | None = None) -> dict[str, Any]:
    """The provenance record of one output: what made it, never where the inputs live or who ran it.

    ``model`` is a name (a folder or file given becomes its stem); ``model_files`` the files whose content
    decides the output (hashed); ``settings`` are filtered by :func:`_safe`, and None or empty ones dropped.
    """
    if version is None:
        from brushwork import __version__ as version
    files = [Path(f) for f in model_files]
    record: dict[str, Any] = {"generator": "brushwork", "version": version, "method": method}
    if model or files:
        name = Path(model).stem if model and _looks_like_path(model) else model or files[0].stem
        record["model"] = {"name": name, **({"sha256": file_sha256(files[0])} if files and files[0].exists()
                                           else {})}
    entries = [style_entry(s, w) for s, w in styles]
    if entries:
        record["styles"] = entries
    kept = {k: v for k, v in ((k, _safe(v)) for k, v in (settings or {}).items()) if v not in (None, [], "")}
    if kept:
        record["settings"] = kept
    record["date"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return record


def _xmp_packet(record: Mapping[str, Any]) -> bytes:
    text = json.dumps(record, separators=(",", ":"), sort_keys=True)
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:brushwork="{_XMP_NS}" '
        f'xmp:CreatorTool="brushwork {record.get("version", "")}" brushwork:provenance="{html.escape(text)}"/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def save_kwargs(fmt: str, record: Mapping[str, Any] | None) -> dict[str, Any]:
    """Pillow ``save()`` keywords that carry ``record``: PNG iTXt chunks, EXIF + XMP for JPEG and WebP,
    TIFF tags. ``record`` None: none (and no Software tag either)."""
    if record is None:
        return {}
    text = json.dumps(record, separators=(",", ":"), sort_keys=True)
    software = f"brushwork {record.get('version', '')}".strip()
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", software)
        info.add_itxt(METADATA_KEY, text)
        info.add_itxt("XML:com.adobe.xmp", _xmp_packet(record).decode())
        return {"pnginfo": info}
    if fmt == "TIFF":
        return {"tiffinfo": {305: software, 270: text}}
    exif = Image.Exif()
    exif[0x0131] = software  # Software
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + text.encode()  # UserComment
    return {"exif": exif.tobytes(), "xmp": _xmp_packet(record)}


def _parse(text: str | bytes | None) -> dict[str, Any] | None:
    if not text:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        value = json.loads(text)
        return value if isinstance(value, dict) and value.get("generator") == "brushwork" else None
    return None


def read_provenance(img: Image.Image) -> dict[str, Any] | None:
    """The provenance record an opened file carries (PNG text, XMP, EXIF UserComment or TIFF tag), if any."""
    found = _parse(img.info.get(METADATA_KEY))
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if found is None and xmp:
        raw = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
        m = re.search(r'brushwork:provenance=("([^"]*)"|\'([^\']*)\')', raw)
        if m:
            found = _parse(html.unescape(m.group(2) or m.group(3) or ""))
    if found is None:
        with contextlib.suppress(Exception):
            exif = img.getexif()
            comment = exif.get_ifd(0x8769).get(0x9286)
            if isinstance(comment, bytes) and comment[:8] == b"ASCII\x00\x00\x00":
                found = _parse(comment[8:])
            found = found or _parse(exif.get(270))
    return found


def encode(img: Image.Image, fmt: str, *, provenance: Mapping[str, Any] | None, watermark: bool,
           quality: int = 95) -> tuple[Image.Image, dict[str, Any], str | None]:
    """What :func:`brushwork.image.io.save_image` writes: the (watermarked) image, its save keywords, a note."""
    note = None
    if watermark:
        img, note = embed_watermark(img)
    record = None if provenance is None else {**provenance, "watermark": watermark and note is None}
    kwargs = save_kwargs(fmt, record)
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if fmt == "PNG":  # run-length matching only: on a 1024 px stylized picture 0.10 s instead of Pillow's
        kwargs["compress_type"] = zlib.Z_RLE  # default 0.22 s, and the same size (photo-like rows gain nothing more)
    return img, kwargs, note


def inspect_image(img: Image.Image) -> dict[str, Any]:
    """Format, size, provenance record and watermark detection of an opened image."""
    return {"format": img.format, "size": list(img.size), "provenance": read_provenance(img),
            "watermark": detect_watermark(img).to_dict()}


def roundtrip(img: Image.Image, fmt: str = "JPEG", quality: int = 90) -> Image.Image:
    """``img`` encoded and decoded again in memory (what another program re-saving it does)."""
    buf = io.BytesIO()
    img.save(buf, fmt, quality=quality)
    buf.seek(0)
    with Image.open(buf) as back:
        return back.convert(img.mode)
