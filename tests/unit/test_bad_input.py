"""Bad image files, property-based (hypothesis): random bytes, mutated and truncated real files of a dozen
formats, and PNG / JPEG / BMP / GIF headers that claim absurd sizes. Each must end in one BrushworkError with a
one-line message at ``load_image`` (or decode to an RGB image, as a lucky mutation may), with no warning and
nothing written on stderr; and in the CLI in exit code 2 with exactly one ``brushwork: error:`` line on stderr,
never a traceback or an internal error.

The examples are derandomized (the ``brushwork`` hypothesis profile in tests/conftest.py), so CI runs the same
ones every time (about 30 s); ``HYPOTHESIS_PROFILE=explore BRUSHWORK_FUZZ=20`` draws fresh ones, 20 times as
many, to look for new failures.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from brushwork.cli.main import main
from brushwork.errors import BrushworkError, ImageError
from brushwork.image.io import load_image

ERROR_LINE = re.compile(r"^brushwork( [a-z]+)?: error: \S")
EXTENSIONS = [".png", ".jpg", ".jpeg", ".webp", ".tif", ".gif", ".bmp", ".ico", ".ppm", ".dds", ""]
FUZZ = max(1, int(os.environ.get("BRUSHWORK_FUZZ", "1")))  #: how many times the usual number of examples
#: capfd is read once per example, which is what these tests want of a function-scoped fixture
FIXTURE_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _seed_files() -> dict[str, bytes]:
    """Small valid files: every format and mode Pillow commonly meets, a few compressions, EXIF."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:20, 0:24]
    arr = np.clip(np.stack([xx * 10, yy * 12, (xx + yy) * 6], -1) + rng.integers(-20, 21, (20, 24, 3)), 0, 255)
    rgb = Image.fromarray(arr.astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate
    return {
        "png": _encode(rgb, "PNG"),
        "png-rgba": _encode(rgb.convert("RGBA"), "PNG"),
        "png-p": _encode(rgb.convert("P"), "PNG"),
        "png-16": _encode(Image.fromarray((arr[..., 0] * 250).astype(np.uint16)), "PNG"),
        "jpeg": _encode(rgb, "JPEG", quality=85),
        "jpeg-exif": _encode(rgb, "JPEG", quality=85, exif=exif.tobytes()),
        "jpeg-progressive": _encode(rgb, "JPEG", quality=85, progressive=True),
        "jpeg-cmyk": _encode(rgb.convert("CMYK"), "JPEG"),
        "webp": _encode(rgb, "WEBP"),
        "tiff": _encode(rgb, "TIFF"),
        "tiff-lzw": _encode(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-float": _encode(Image.fromarray(arr[..., 1].astype(np.float32) / 255), "TIFF"),
        "gif": _encode(rgb.convert("P"), "GIF"),
        "bmp": _encode(rgb, "BMP"),
        "ico": _encode(rgb.convert("RGBA"), "ICO"),
        "ppm": _encode(rgb, "PPM"),
    }


SEEDS = _seed_files()


# --------------------------------------------------------------------------- strategies


@st.composite
def mutated(draw) -> bytes:
    """A real file with a few bytes flipped, inserted or deleted, or cut short."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "splat"]))
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 32))]
        elif op == "truncate":
            del data[pos:]
        else:  # overwrite a run with 0x00 or 0xff, which decoders treat specially
            data[pos:pos + 8] = bytes([draw(st.sampled_from([0, 255]))]) * 8
    return bytes(data)


@st.composite
def truncated(draw) -> bytes:
    """A real file cut at any length from its first byte to one byte short."""
    data = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
    return data[: draw(st.integers(1, len(data) - 1))]


DIMENSION = st.one_of(st.integers(0, 70_000), st.integers(0, 2**32 - 1), st.sampled_from([1, 8000, 8001, 65535]))


def png_with_size(width: int, height: int, depth: int = 8, color: int = 2, body: bytes = b"") -> bytes:
    """A PNG whose (CRC-correct) IHDR claims ``width`` x ``height``, then ``body`` as its only IDAT."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@st.composite
def absurd_png(draw) -> bytes:
    depth, color = draw(st.sampled_from([(8, 2), (8, 6), (16, 2), (1, 0), (8, 3), (16, 0), (8, 4), (7, 2), (8, 9)]))
    body = draw(st.one_of(st.just(b""), st.binary(max_size=64), st.binary(max_size=64).map(zlib.compress)))
    return png_with_size(draw(DIMENSION), draw(DIMENSION), depth, color, body)


def _patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


@st.composite
def absurd_header(draw) -> bytes:
    """A real JPEG, BMP or GIF whose header is rewritten to claim another (often absurd) size, maybe cut short."""
    kind = draw(st.sampled_from(["jpeg", "bmp", "gif"]))
    w, h = draw(DIMENSION), draw(DIMENSION)
    if kind == "jpeg":  # SOF0: FF C0, length, precision, height, width (16 bits each)
        data = SEEDS["jpeg"]
        data = _patch(data, data.index(b"\xff\xc0") + 5, ">HH", h % 65536, w % 65536)
    elif kind == "bmp":  # BITMAPINFOHEADER: signed 32-bit width and height (negative height: top-down)
        data = _patch(SEEDS["bmp"], 18, "<ii", w % 2**31, draw(st.sampled_from([1, -1])) * (h % 2**31))
    else:  # the logical screen and the first image descriptor
        data = SEEDS["gif"]
        data = _patch(data, 6, "<HH", w % 65536, h % 65536)
        d = data.index(b"\x2c", 13)
        data = _patch(data, d + 5, "<HH", w % 65536, h % 65536)
    if draw(st.booleans()):
        data = data[: draw(st.integers(1, len(data)))]
    return data


def dds_unknown_pixel_format() -> bytes:
    """A DDS header whose pixel format Pillow does not know: its plugin raises NotImplementedError."""
    header = struct.pack("<7I", 124, 0x1007, 4, 4, 0, 0, 0) + b"\0" * 44
    pixel_format = struct.pack("<2I4s5I", 32, 0, b"\0" * 4, 0, 0, 0, 0, 0)
    return b"DDS " + header + pixel_format + struct.pack("<5I", 0x1000, 0, 0, 0, 0) + b"\0" * 64


def jpeg_with_broken_exif() -> bytes:
    """A valid JPEG whose EXIF block ends early: Pillow warns 'Corrupt EXIF data' while rotating it."""
    rgb = Image.new("RGB", (32, 24), (200, 30, 30))
    return _encode(rgb, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00")


def float_tiff_with_nan() -> bytes:
    arr = np.full((24, 32), np.nan, np.float32)
    arr[0, 0], arr[0, 1], arr[1, 1] = np.inf, -np.inf, 0.5
    return _encode(Image.fromarray(arr), "TIFF")


def lzw_tiff_with_zeroed_strip() -> bytes:
    """An LZW TIFF whose compressed strip is all zeros: its directory is intact, so libtiff decodes and
    complains (on file descriptor 2, not through Python)."""
    data = SEEDS["tiff-lzw"]
    ifd = struct.unpack("<I", data[4:8])[0]
    return data[:8] + b"\0" * (ifd - 8) + data[ifd:]


BAD_BYTES = st.one_of(st.binary(min_size=1, max_size=2048), mutated(), truncated(), absurd_png(), absurd_header())
NAMED_CASES = {  # found or built while writing this test: each one escaped once (see test_named_cases_*)
    "dds": dds_unknown_pixel_format(),
    "broken-exif": jpeg_with_broken_exif(),
    "nan-tiff": float_tiff_with_nan(),
    "lzw-tiff-cut": SEEDS["tiff-lzw"][:-30],
    "lzw-tiff-zeroed": lzw_tiff_with_zeroed_strip(),  # libtiff prints to fd 2 about it
    "png-0x0": png_with_size(0, 0),
    "png-huge": png_with_size(2**31 - 1, 2**31 - 1),
    "png-64mp": png_with_size(8000, 8000, body=zlib.compress(b"\0" * 100)),
    "jpeg-65535": _patch(SEEDS["jpeg"], SEEDS["jpeg"].index(b"\xff\xc0") + 5, ">HH", 65535, 65535),
}


# --------------------------------------------------------------------------- the checks


def _write(tmp: Path, data: bytes, ext: str) -> Path:
    path = tmp / f"bad{ext}"
    path.write_bytes(data)
    return path


def check_load(path: Path, capfd) -> str:
    """load_image: an RGB image or one one-line BrushworkError; no warning, nothing on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            img = load_image(path, what="photo")
        except BrushworkError as exc:
            outcome = "error"
            assert isinstance(exc, ImageError), repr(exc)
            assert str(exc) and "\n" not in str(exc) and str(path) in str(exc), str(exc)
        else:
            outcome = "ok"
            assert isinstance(img, Image.Image) and img.mode == "RGB" and min(img.size) >= 1
            img.close()
    assert [str(w.message) for w in caught] == []
    out, err = capfd.readouterr()
    assert (out, err) == ("", ""), err
    return outcome


#: where the CLI meets the bad file: (argv before the output, the word its error line must name)
ROLES = {
    "photo": (lambda bad, good: ["stylize", bad, "-s", "starry_night", "--model", "starry_night"], "photo"),
    "style": (lambda bad, good: ["stylize", good, "-s", bad], "style image"),  # AdaIN reads the painting
    "mask": (lambda bad, good: ["stylize", good, "--mask", bad, "-s", "starry_night", "--model", "starry_night"],
             "mask"),
}


def check_cli(path: Path, out_png: Path, capfd, role: str = "photo") -> int:
    """The CLI on a bad file: exit 2 and one error line naming it (or 0 and an image, when the bytes decode)."""
    good = out_png.with_name("good.png")
    if not good.exists():
        Image.new("RGB", (64, 48), (90, 140, 200)).save(good)
    argv, word = ROLES[role]
    code = main([str(a) for a in argv(path, good)] + ["--size", "64", "-o", str(out_png)])
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 0:  # a lucky mutation that still decodes: a normal run
        with Image.open(out_png) as img:
            assert max(img.size) <= 64
        out_png.unlink()
        plain = [x for x in lines if not x.startswith("brushwork: note: ")]  # notes (resized, no watermark) are fine
        assert len(plain) <= 1 and all(not ERROR_LINE.match(x) for x in lines), err
    else:
        assert code == 2, (code, err)
        assert len(lines) == 1 and ERROR_LINE.match(lines[0]) and word in lines[0], err
        assert out == "" and not out_png.exists()
    return code


@settings(max_examples=1000 * FUZZ, suppress_health_check=FIXTURE_OK)
@given(data=BAD_BYTES, ext=st.sampled_from(EXTENSIONS))
@example(data=b"\x89PNG\r\n\x1a\n", ext=".png")
@example(data=b"\xff\xd8\xff", ext=".jpg")
@example(data=b"II*\x00" + b"\xff" * 12, ext=".tif")
def test_load_image_bad_bytes_end_in_one_brushwork_error(data, ext, tmp_path, capfd):
    check_load(_write(tmp_path, data, ext), capfd)


@settings(max_examples=50 * FUZZ, suppress_health_check=FIXTURE_OK)
@given(data=BAD_BYTES, ext=st.sampled_from([".png", ".jpg", ".tif", ""]), role=st.sampled_from(sorted(ROLES)))
@example(data=SEEDS["jpeg"][:600], ext=".jpg", role="photo")
@example(data=png_with_size(60000, 60000), ext=".png", role="style")
@example(data=SEEDS["tiff-lzw"][:-30], ext=".tif", role="mask")
def test_cli_bad_file_is_exit_2_and_one_line(data, ext, role, tmp_path, capfd):
    check_cli(_write(tmp_path, data, ext), tmp_path / "out.png", capfd, role)


@pytest.mark.parametrize("name", sorted(NAMED_CASES))
def test_named_cases_at_load_image(name, tmp_path, capfd):
    outcome = check_load(_write(tmp_path, NAMED_CASES[name], ".img"), capfd)
    # a valid file with broken metadata or odd values decodes; the rest are refused
    assert outcome == ("ok" if name in ("broken-exif", "nan-tiff") else "error")


def test_named_cases_in_the_cli(tmp_path, capfd):
    codes = {name: check_cli(_write(tmp_path, data, ".img"), tmp_path / "out.png", capfd)
             for name, data in NAMED_CASES.items()}
    assert codes == {name: 0 if name in ("broken-exif", "nan-tiff") else 2 for name in NAMED_CASES}


def test_float_image_with_nan_and_inf_keeps_its_range(tmp_path):
    """NaN and -inf are black, +inf white, and they do not stretch the 0..1 range of the finite pixels."""
    out = np.asarray(load_image(_write(tmp_path, float_tiff_with_nan(), ".tif")))[..., 0]
    assert out[0, 0] == 255 and out[0, 1] == 0 and out[1, 1] == 128 and out[2, 2] == 0


def test_decoder_messages_name_the_reason(tmp_path):
    with pytest.raises(ImageError, match=r"variant of its format Pillow cannot decode \(Unknown pixel format"):
        load_image(_write(tmp_path, dds_unknown_pixel_format(), ".dds"))
    with pytest.raises(ImageError, match=r"corrupt or truncated \(.*; libtiff: Using code not yet in table"):
        load_image(_write(tmp_path, lzw_tiff_with_zeroed_strip(), ".tif"))
    with pytest.raises(ImageError, match=r"claims 12000x10000 = 120 megapixels in a file of \d+ bytes"):
        load_image(_write(tmp_path, png_with_size(12000, 10000), ".png"))  # a real 120 MP photo is not that small
    with pytest.raises(ImageError, match=r"too large to decode safely"):
        load_image(_write(tmp_path, NAMED_CASES["png-huge"], ".png"))
