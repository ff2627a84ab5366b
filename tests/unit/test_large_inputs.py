"""Large inputs (issue 15): real photos up to what memory holds, bombs refused from the header in one line.

Everything here is generated and small: the huge images are PNG headers (struct + zlib) that claim a size over a
few bytes, so nothing large is ever decoded; the memory budget is injected.
"""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from brushwork import provenance
from brushwork.cli.main import main
from brushwork.errors import BrushworkError, ImageError, ResourceError
from brushwork.image import io as image_io
from brushwork.image.io import (
    HARD_MAX_PIXELS,
    available_memory,
    check_decode_memory,
    check_pixels,
    decode_memory,
    image_size,
    load_image,
)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def crafted_png(width: int, height: int, padding: int = 0) -> bytes:
    """A valid-looking RGB PNG whose IHDR claims ``width`` x ``height`` over a tiny IDAT; ``padding`` bytes of a
    private ancillary chunk after it make the file as large as a real one would be (readers skip it)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 16))
    if padding:
        body += _chunk(b"prVt", b"\0" * padding)
    return b"\x89PNG\r\n\x1a\n" + body + _chunk(b"IEND", b"")


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any decode fails the test: the refusals must come from the header alone."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


def one_line(exc: BaseException, *fragments: str) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg and isinstance(exc, BrushworkError), msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


# --------------------------------------------------------------------------- bombs


def test_tiny_png_claiming_30000x30000_is_refused_before_decoding(tmp_path: Path, no_decoding,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "crafted.png"
    path.write_bytes(crafted_png(30000, 30000))
    monkeypatch.setattr(image_io, "available_memory", lambda: 1 << 50)  # refused even where it would fit
    with pytest.raises(ImageError) as info:
        load_image(path, what="photo")
    msg = one_line(info.value, "photo", "30000x30000", "900 megapixels", f"{path.stat().st_size:,} bytes",
                   "decompression bomb", str(path))
    with pytest.raises(ImageError) as again:  # the same answer where a job is priced
        image_size(path, what="photo")
    assert str(again.value) == msg


def test_memory_check_names_the_size_and_both_amounts(tmp_path: Path, no_decoding,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "crafted.png"
    path.write_bytes(crafted_png(30000, 30000))
    monkeypatch.setattr(image_io, "MAX_PIXELS_PER_BYTE", 10**12)  # let it past the sparse-file guard
    monkeypatch.setattr(image_io, "available_memory", lambda: 2 << 30)
    with pytest.raises(ResourceError) as info:
        load_image(path, what="photo")
    assert isinstance(info.value, ImageError)  # what callers of the image readers catch
    need = decode_memory((30000, 30000), "RGB", transposed=False) / 2**30
    one_line(info.value, "photo", "30000x30000", "900 megapixels", f"needs about {need:.1f} GiB",
             "only 2.0 GiB is available", str(path))


def test_memory_check_on_a_real_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.png"
    Image.new("RGBA", (64, 48), (1, 2, 3, 4)).save(path)
    monkeypatch.setattr(image_io, "available_memory", lambda: 1000)
    with pytest.raises(ResourceError) as info:
        load_image(path)
    one_line(info.value, "64x48", "RGBA", "needs about")
    monkeypatch.setattr(image_io, "available_memory", lambda: 1 << 30)
    assert load_image(path).size == (64, 48)


def test_over_a_gigapixel_is_a_bomb_whatever_the_memory(tmp_path: Path, no_decoding,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_io, "available_memory", lambda: 1 << 50)
    path = tmp_path / "big.png"
    path.write_bytes(crafted_png(40000, 30000, padding=2_000_000))  # 1.2 GP, and not sparse
    with pytest.raises(ImageError) as info:
        load_image(path)
    one_line(info.value, "decompression bomb", "1,200 megapixels", str(path))
    with pytest.raises(ImageError, match="over the 1,000 MP limit"):
        check_pixels((40000, 30000), 10**9)
    with pytest.raises(ImageError, match="decompression bomb"):
        check_pixels((HARD_MAX_PIXELS + 1, 1), None)


def test_a_120_mp_photo_passes_the_guards_when_memory_suffices() -> None:
    size = (12000, 10000)  # a real camera's 120 MP: about 5 MB as JPEG at quality 90
    check_pixels(size, 5_000_000)
    check_pixels((31622, 31622), None)  # just under the hard limit, in memory: the limit only
    assert decode_memory(size, "RGB", transposed=False) == 12000 * 10000 * 4 + image_io._DECODE_SLACK
    check_decode_memory(size, "RGB", transposed=False, available=1 << 30)  # 0.5 GiB needed: fits in 1
    with pytest.raises(ResourceError, match=r"needs about 0\.5 GiB .* only 0\.2 GiB"):
        check_decode_memory(size, "RGB", transposed=False, available=256 << 20)
    with pytest.raises(ImageError, match="cut-short"):
        check_pixels(size, 100_000)  # 1200 pixels a byte: no real photo is that small


def test_120_mp_header_opens_without_pillow_bomb_warning(tmp_path: Path, no_decoding) -> None:
    """Pillow's own cap (89 MP warning, 179 MP error) is lifted to the hard limit: a 120 MP header is read."""
    path = tmp_path / "photo120.png"
    path.write_bytes(crafted_png(12000, 10000, padding=150_000))
    assert Image.MAX_IMAGE_PIXELS == HARD_MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert image_size(path) == (12000, 10000)


@pytest.mark.parametrize(("mode", "per_pixel"), [("RGB", 4), ("L", 5), ("1", 5), ("RGBA", 8), ("LA", 12),
                                                ("CMYK", 8), ("I;16", 7), ("F", 9)])
def test_decode_memory_counts_each_mode(mode: str, per_pixel: int) -> None:
    px = 1000 * 1000
    assert decode_memory((1000, 1000), mode, transposed=False) == px * per_pixel + image_io._DECODE_SLACK
    assert decode_memory((1000, 1000), "RGB") == px * 8 + image_io._DECODE_SLACK  # a rotation's copy
    assert decode_memory((1000, 1000), "P", transposed=False, transparency=True) == px * 9 + image_io._DECODE_SLACK
    assert decode_memory((1000, 1000), "RGB", transposed=False, single_frame=False) == (
        px * 8 + image_io._DECODE_SLACK)


# --------------------------------------------------------------------------- image_size


def _jpeg_with_orientation(path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (40, 20), (200, 30, 30)).save(path, quality=90, exif=exif.tobytes())


@pytest.mark.parametrize(("orientation", "expected"), [(1, (40, 20)), (3, (40, 20)), (6, (20, 40)), (8, (20, 40))])
def test_image_size_honours_exif_orientation(tmp_path: Path, orientation: int, expected: tuple[int, int]) -> None:
    path = tmp_path / f"o{orientation}.jpg"
    _jpeg_with_orientation(path, orientation)
    assert image_size(path) == expected == load_image(path).size
    with Image.open(path) as opened:
        assert image_size(opened) == expected


def test_image_size_of_png_with_exif_reads_no_pixels(tmp_path: Path, no_decoding) -> None:
    path = tmp_path / "o6.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 20)).save(path, exif=exif.tobytes())  # Pillow writes eXIf before the pixels
    assert image_size(path) == (20, 40)


def test_image_size_of_memory_inputs() -> None:
    assert image_size(Image.new("RGB", (7, 5))) == (7, 5)
    assert image_size(np.zeros((5, 7, 3), np.uint8)) == (7, 5)
    assert image_size(np.zeros((3, 5, 7), np.float32)) == (7, 5)  # CxHxW, as load_image reads it
    assert image_size(np.zeros((5, 7), np.uint8)) == (7, 5)
    with pytest.raises(ImageError, match="not an image"):
        image_size(np.zeros((2, 5, 7, 3)))
    with pytest.raises(ImageError, match="cannot read"):
        image_size(42)  # type: ignore[arg-type]


def test_image_size_errors_are_load_images(tmp_path: Path) -> None:
    cut = tmp_path / "cut.png"
    cut.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 5)
    for path in (tmp_path / "missing.jpg", tmp_path, cut):
        with pytest.raises(ImageError) as sized:
            image_size(path, what="photo")
        with pytest.raises(ImageError) as loaded:
            load_image(path, what="photo")
        assert str(sized.value) == str(loaded.value)
        one_line(sized.value, "photo", str(path))


# --------------------------------------------------------------------------- loading without extra copies


def test_multi_frame_rgb_file_is_copied_and_closed(tmp_path: Path, opened_images: list) -> None:
    path = tmp_path / "pages.tif"
    pages = [Image.new("RGB", (16, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    opened = opened_images
    out = load_image(path)
    assert out is not opened[0]  # a copy handed over; the original closed, and its file with it
    with pytest.raises(ValueError, match="closed"):
        opened[0].getpixel((0, 0))
    np.testing.assert_array_equal(np.asarray(out)[0, 0], [255, 0, 0])
    single = tmp_path / "one.jpg"
    Image.new("RGB", (16, 8), (9, 9, 9)).save(single)
    assert load_image(single) is opened[1] and opened[1].fp is None  # one frame: handed over itself


def test_rotated_file_is_rotated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "o6.jpg"
    _jpeg_with_orientation(path, 6)
    out = load_image(path)
    assert out.size == (20, 40) and out.mode == "RGB"
    assert out.getexif().get(0x0112, 1) == 1  # the tag is gone, so it is not turned twice


def test_high_depth_conversion_is_the_same_in_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    arr = rng.random((37, 23)).astype(np.float32) * 300
    arr[5, 5], arr[30, 1] = np.nan, np.inf
    whole = np.asarray(load_image(Image.fromarray(arr)))
    monkeypatch.setattr(image_io, "_BAND_PIXELS", 50)  # about two rows a band
    np.testing.assert_array_equal(np.asarray(load_image(Image.fromarray(arr))), whole)


# --------------------------------------------------------------------------- memory and saving


def test_available_memory_honours_a_container_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100000000 kB\nMemAvailable: 50000000 kB\n")
    limit, usage, stat = tmp_path / "max", tmp_path / "current", tmp_path / "stat"
    limit.write_text(f"{4 << 30}\n")
    usage.write_text(f"{3 << 30}\n")
    stat.write_text(f"anon 123\ninactive_file {1 << 30}\n")
    monkeypatch.setattr(image_io, "_MEMINFO", str(meminfo))
    monkeypatch.setattr(image_io, "_CGROUP_FILES", ((str(limit), str(usage), str(stat), "inactive_file"),))
    assert available_memory() == 2 << 30  # 4 GiB limit, 3 GiB used of which 1 GiB is droppable cache
    limit.write_text("max\n")
    assert available_memory() == 50000000 * 1024
    assert image_io.available_memory.__module__ == "brushwork.image.io"


def test_watermark_in_bands_is_the_same_as_in_one(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    for mode in ("RGB", "RGBA", "L", "LA"):
        img = Image.fromarray(rng.integers(0, 256, (90, 130, 4), np.uint8), "RGBA").resize((700, 520)).convert(mode)
        whole, note = provenance.embed_watermark(img)
        assert note is None
        with monkeypatch.context() as m:
            m.setattr(provenance, "_BAND_PIXELS", 3000)  # a few rows a band
            banded, _ = provenance.embed_watermark(img)
        assert banded.mode == mode
        np.testing.assert_array_equal(np.asarray(banded), np.asarray(whole))
        assert provenance.detect_watermark(banded).detected


# --------------------------------------------------------------------------- the command line


def test_cli_refuses_the_crafted_png_in_one_line(tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                                 no_decoding) -> None:
    path = tmp_path / "crafted.png"
    path.write_bytes(crafted_png(30000, 30000))
    out = tmp_path / "out.jpg"
    code = main(["stylize", str(path), "-o", str(out), "--model", "starry_night"])
    stdout, stderr = capfd.readouterr()
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("brushwork") and ": error: " in lines[0], stderr
    assert "photo" in lines[0] and "30000x30000" in lines[0] and "Traceback" not in stderr
    assert stdout == "" and not out.exists()
