"""The fast PNG writer: every mode it takes reads back bit-exact in Pillow, in one band or many, with isal
or with zlib; its metadata chunks are the ones Pillow would write; other modes are left to Pillow."""

from __future__ import annotations

import builtins
import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from brushwork.image import png
from brushwork.image.io import save_image
from brushwork.provenance import read_provenance


def _image(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = size
    bands = len(mode)
    y, x = np.mgrid[0:h, 0:w]
    smooth = (x * 3 + y * 5)[..., None] + np.arange(bands) * 40  # long runs and wrap-around differences
    arr = ((smooth + rng.integers(0, 6, (h, w, bands))) % 256).astype(np.uint8)
    return Image.fromarray(arr[..., 0] if bands == 1 else arr, mode=mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("size", [(1, 1), (7, 3), (64, 48)])
def test_every_mode_reads_back_exactly(mode: str, size: tuple[int, int]) -> None:
    img = _image(mode, size)
    back = Image.open(io.BytesIO(png.encode_png(img)))
    assert back.mode == mode and back.size == size
    assert np.array_equal(np.asarray(back), np.asarray(img))


def test_many_bands_and_the_zlib_fallback_give_the_same_pixels(monkeypatch) -> None:
    img = _image("RGB", (50, 37), seed=1)
    whole = png.encode_png(img)
    monkeypatch.setattr(png, "BAND_BYTES", 200)  # 1 row a band
    banded = png.encode_png(img)
    real_import = builtins.__import__

    def no_isal(name, *args, **kwargs):
        if name.startswith("isal"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_isal)
    with_zlib = png.encode_png(img)
    assert with_zlib != banded  # another deflater really ran
    for data in (whole, banded, with_zlib):
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), np.asarray(img))


def test_metadata_chunks_are_the_ones_pillow_writes() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "brushwork test")
    info.add_itxt("brushwork", '{"a": "\u00e9"}')
    info.add(b"tIME", bytes([7, 234, 12, 2, 3, 4, 5]), after_idat=True)
    data = png.encode_png(_image("RGB", (8, 8)), info.chunks)
    back = Image.open(io.BytesIO(data))
    back.load()
    assert back.info["Software"] == "brushwork test" and back.info["brushwork"] == '{"a": "\u00e9"}'
    assert data.index(b"tIME") > data.index(b"IDAT")


def test_other_modes_and_colour_profiles_go_to_pillow(tmp_path) -> None:
    assert png.encode_png(Image.new("P", (4, 4))) is None
    assert png.encode_png(Image.new("I;16", (4, 4))) is None
    profiled = _image("RGB", (300, 200))
    profiled.info["icc_profile"] = b"a colour profile"
    assert png.encode_png(profiled) is None
    for marked in (False, True):
        out = save_image(profiled, tmp_path / f"profiled{marked}.png", watermark=marked)
        assert Image.open(out).info.get("icc_profile") == b"a colour profile"
    out = save_image(Image.new("I;16", (300, 200), 1234), tmp_path / "deep.png", watermark=False)
    assert np.asarray(Image.open(out)).max() == 1234


def test_save_image_writes_a_marked_png_with_its_provenance(tmp_path) -> None:
    img = _image("RGB", (320, 240), seed=2)
    out = save_image(img, tmp_path / "out.png", provenance={"generator": "brushwork", "method": "test"})
    back = Image.open(out)
    assert read_provenance(back)["method"] == "test"
    diff = np.abs(np.asarray(back, dtype=np.int16) - np.asarray(img, dtype=np.int16))
    assert 0 < diff.mean() < 3  # the watermark, nothing else
