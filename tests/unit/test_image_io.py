"""Image loading (every Pillow mode, EXIF, arrays, tensors), errors, fit_size and save_image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import brushwork.image.io as image_io
from brushwork.errors import BrushworkError, ImageError
from brushwork.image import fit_size, load_image, save_image, to_tensor


def rgb(img: Image.Image) -> np.ndarray:
    assert isinstance(img, Image.Image)
    assert img.mode == "RGB"
    return np.asarray(img)


def assert_one_line_error(exc_info: pytest.ExceptionInfo, *fragments: str) -> None:
    msg = str(exc_info.value)
    assert msg
    assert "\n" not in msg
    assert isinstance(exc_info.value, BrushworkError)
    for fragment in fragments:
        assert fragment in msg


# --------------------------------------------------------------------------- modes


def test_rgb_file_loads_unchanged(rgb_image_file: Path, rgb_array: np.ndarray) -> None:
    img = load_image(rgb_image_file)
    assert img.size == (24, 16)
    np.testing.assert_array_equal(rgb(img), rgb_array)


def test_rgb_accepts_str_path(rgb_image_file: Path, rgb_array: np.ndarray) -> None:
    np.testing.assert_array_equal(rgb(load_image(str(rgb_image_file))), rgb_array)


def test_rgba_composited_onto_white(tmp_path: Path) -> None:
    arr = np.array(
        [[[10, 20, 30, 0], [10, 20, 30, 255], [0, 0, 0, 128], [200, 100, 50, 255]]], dtype=np.uint8
    )
    path = tmp_path / "rgba.png"
    Image.fromarray(arr, mode="RGBA").save(path)
    out = rgb(load_image(path))
    np.testing.assert_array_equal(out[0, 0], [255, 255, 255])  # fully transparent -> white
    np.testing.assert_array_equal(out[0, 1], [10, 20, 30])  # opaque -> its own colour
    assert np.all(np.abs(out[0, 2].astype(int) - 127) <= 1)  # half-transparent black -> mid gray
    np.testing.assert_array_equal(out[0, 3], [200, 100, 50])


def test_rgba_pil_image_input() -> None:
    img = Image.new("RGBA", (3, 2), (0, 0, 255, 0))
    np.testing.assert_array_equal(rgb(load_image(img)), np.full((2, 3, 3), 255, np.uint8))


def test_la_composited_onto_white(tmp_path: Path) -> None:
    arr = np.array([[[50, 255], [50, 0]]], dtype=np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(arr, mode="LA").save(path)
    with Image.open(path) as check:
        assert check.mode == "LA"
    out = rgb(load_image(path))
    np.testing.assert_array_equal(out[0, 0], [50, 50, 50])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])


def _palette_image() -> Image.Image:
    p = Image.new("P", (3, 1))
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (768 - 9))
    p.putdata([0, 1, 2])
    return p


def test_palette_without_transparency(tmp_path: Path) -> None:
    path = tmp_path / "p.png"
    _palette_image().save(path)
    with Image.open(path) as check:
        assert check.mode == "P"
        assert "transparency" not in check.info
    out = rgb(load_image(path))
    np.testing.assert_array_equal(out[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])


def test_palette_with_transparency(tmp_path: Path) -> None:
    path = tmp_path / "pt.png"
    _palette_image().save(path, transparency=1)
    with Image.open(path) as check:
        assert check.mode == "P"
        assert check.info.get("transparency") == 1
    out = rgb(load_image(path))
    np.testing.assert_array_equal(out[0], [[255, 0, 0], [255, 255, 255], [0, 0, 255]])


def test_cmyk(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.tif"
    img = Image.new("CMYK", (2, 1), (0, 0, 0, 0))
    img.putpixel((1, 0), (255, 0, 0, 0))  # pure cyan
    img.save(path)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    out = rgb(load_image(path))
    np.testing.assert_array_equal(out[0], [[255, 255, 255], [0, 255, 255]])


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 0, 0, 0)).save(path, quality=95)
    out = rgb(load_image(path))
    assert out.shape == (8, 8, 3)
    assert out.min() >= 250  # white stays white


def test_grayscale_l(tmp_path: Path) -> None:
    path = tmp_path / "l.png"
    Image.fromarray(np.array([[0, 77, 255]], np.uint8), mode="L").save(path)
    out = rgb(load_image(path))
    np.testing.assert_array_equal(out[0], [[0, 0, 0], [77, 77, 77], [255, 255, 255]])


def test_bilevel_1(tmp_path: Path) -> None:
    path = tmp_path / "b.png"
    img = Image.new("1", (2, 1), 0)
    img.putpixel((1, 0), 1)
    img.save(path)
    with Image.open(path) as check:
        assert check.mode == "1"
    out = rgb(load_image(path))
    np.testing.assert_array_equal(out[0], [[0, 0, 0], [255, 255, 255]])


def test_16bit_png_scaled_to_8bit(tmp_path: Path) -> None:
    path = tmp_path / "g16.png"
    Image.fromarray(np.array([[0, 32768, 65535, 1000]], np.uint16)).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    out = rgb(load_image(path))[0, :, 0]
    np.testing.assert_array_equal(out, [0, 128, 255, 4])


def test_16bit_png_dark_image_is_not_stretched(tmp_path: Path) -> None:
    # A dark 16-bit image (all values <= 255 of 65535) must stay dark.
    path = tmp_path / "g16_dark.png"
    Image.fromarray(np.array([[0, 100, 255]], np.uint16)).save(path)
    with Image.open(path) as check:
        if check.mode == "I":
            pytest.skip("this Pillow opens 16-bit PNGs as 32-bit 'I': the bit depth is not known")
    out = rgb(load_image(path))[0, :, 0]
    assert out.max() <= 1


def test_int32_mode_i(tmp_path: Path) -> None:
    small = tmp_path / "i8.tif"
    Image.fromarray(np.array([[0, 100, 255]], np.int32)).save(small)
    with Image.open(small) as check:
        assert check.mode == "I"
    np.testing.assert_array_equal(rgb(load_image(small))[0, :, 0], [0, 100, 255])
    wide = tmp_path / "i16.tif"
    Image.fromarray(np.array([[0, 32768, 65535]], np.int32)).save(wide)
    np.testing.assert_array_equal(rgb(load_image(wide))[0, :, 0], [0, 128, 255])


def test_float_mode_f(tmp_path: Path) -> None:
    path = tmp_path / "f.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(path)
    with Image.open(path) as check:
        assert check.mode == "F"
    np.testing.assert_array_equal(rgb(load_image(path))[0, :, 0], [0, 128, 255])
    # 0..255 floats are taken as 8-bit values
    img = Image.fromarray(np.array([[0.0, 100.0, 255.0]], np.float32))
    np.testing.assert_array_equal(rgb(load_image(img))[0, :, 0], [0, 100, 255])


def test_exif_orientation_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    Image.new("RGB", (30, 20), (200, 10, 10)).save(path, exif=exif.tobytes())
    with Image.open(path) as check:
        assert check.size == (30, 20)
        assert check.getexif().get(0x0112) == 6
    img = load_image(path)
    assert img.size == (20, 30)
    assert img.mode == "RGB"


def test_at_least_decodes_a_jpeg_smaller_but_not_below_it(tmp_path: Path) -> None:
    """A caller that shrinks anyway may get a JPEG decoded at a fraction of its size: never smaller than
    asked, rotated as the full decode, the same picture after the resize; other formats come whole."""
    yy, xx = np.mgrid[0:600, 0:1000]
    arr = np.stack([xx * 255 // 999, yy * 255 // 599, (xx + yy) % 256], axis=-1).astype(np.uint8)
    jpg, png = tmp_path / "p.jpg", tmp_path / "p.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(jpg, quality=95, exif=exif.tobytes())
    Image.fromarray(arr).save(png)
    full, small = load_image(jpg), load_image(jpg, at_least=200)
    assert full.size == (600, 1000) and small.size == (150, 250)  # DCT scale 1/4; turned as the full one
    assert load_image(jpg, at_least=400).size == (300, 500)
    assert load_image(jpg, at_least=600).size == (600, 1000)  # halving would go below 600: whole
    assert load_image(png, at_least=200).size == (1000, 600)  # (no EXIF in it)
    a = np.asarray(full.resize((120, 200), Image.Resampling.LANCZOS), dtype=float)
    b = np.asarray(small.resize((120, 200), Image.Resampling.LANCZOS), dtype=float)
    assert np.abs(a - b).mean() < 2.0


# --------------------------------------------------------------------------- arrays and tensors


def test_ndarray_uint8_hwc(rgb_array: np.ndarray) -> None:
    img = load_image(rgb_array)
    assert img.size == (24, 16)
    np.testing.assert_array_equal(rgb(img), rgb_array)


def test_ndarray_float_01(rgb_array: np.ndarray) -> None:
    arr = rgb_array.astype(np.float32) / 255.0
    np.testing.assert_array_equal(rgb(load_image(arr)), rgb_array)


def test_ndarray_float_out_of_range_is_clipped() -> None:
    arr = np.array([[[-0.5, 0.5, 1.5]]], np.float64)
    np.testing.assert_array_equal(rgb(load_image(arr))[0, 0], [0, 128, 255])


def test_ndarray_grayscale_hw() -> None:
    arr = np.array([[0, 10], [200, 255]], np.uint8)
    out = rgb(load_image(arr))
    assert out.shape == (2, 2, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], arr)


def test_ndarray_chw_is_accepted(rgb_array: np.ndarray) -> None:
    chw = np.ascontiguousarray(np.moveaxis(rgb_array, -1, 0))
    np.testing.assert_array_equal(rgb(load_image(chw)), rgb_array)


def test_ndarray_bad_shape_is_image_error() -> None:
    with pytest.raises(ImageError) as info:
        load_image(np.zeros((2, 3, 4, 5), np.uint8))
    assert_one_line_error(info)


@pytest.mark.parametrize("batched", [False, True])
def test_tensor_input(rgb_array: np.ndarray, batched: bool) -> None:
    t = to_tensor(Image.fromarray(rgb_array))
    assert t.shape == (1, 3, 16, 24)
    img = load_image(t if batched else t[0])
    assert img.size == (24, 16)
    np.testing.assert_array_equal(rgb(img), rgb_array)


def test_tensor_requiring_grad_is_detached() -> None:
    t = torch.full((1, 3, 2, 2), 0.5, requires_grad=True)
    np.testing.assert_array_equal(rgb(load_image(t)), np.full((2, 2, 3), 128, np.uint8))


def test_unsupported_input_type() -> None:
    with pytest.raises(ImageError) as info:
        load_image(42, what="style image")  # type: ignore[arg-type]
    assert_one_line_error(info, "style image", "int")


def test_real_photos_load(shared_data: Path | None, media_files) -> None:
    """Real camera JPEGs: the shared data's content photos when present, and matplotlib's sample photo."""
    files = sorted((shared_data / "content").glob("*.jpg"))[:3] if shared_data else []
    for path in [*files, media_files.portrait]:
        img = load_image(path)
        assert img.mode == "RGB" and min(img.size) > 0
    assert load_image(media_files.portrait).size == (512, 600)


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as info:
        load_image(tmp_path / "nope.jpg", what="photo")
    assert_one_line_error(info, "photo", "not found", "nope.jpg")


def test_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError) as info:
        load_image(tmp_path)
    assert_one_line_error(info, "folder")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert_one_line_error(info, "empty")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\nsecond line\n")
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert_one_line_error(info, "notes.jpg")


def test_truncated_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    full = tmp_path / "full.jpg"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full, quality=90)
    data = full.read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as info:
        load_image(cut)
    assert_one_line_error(info, "cut.jpg")


def test_decompression_bomb_brushwork_limit(monkeypatch: pytest.MonkeyPatch, rgb_image_file: Path) -> None:
    monkeypatch.setattr(image_io, "MAX_PIXELS", 100)  # the file is 24x16 = 384 pixels
    with pytest.raises(ImageError) as info:
        load_image(rgb_image_file)
    assert_one_line_error(info, "decompression bomb")


@pytest.mark.parametrize("limit", [100, 300])  # 384 pixels: over 2x the limit (error), and over 1x (warning)
def test_decompression_bomb_pillow_limit(monkeypatch: pytest.MonkeyPatch, rgb_image_file: Path, limit: int) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageError) as info:
        load_image(rgb_image_file)
    assert_one_line_error(info, "decompression bomb")


# --------------------------------------------------------------------------- fit_size


@pytest.mark.parametrize(
    ("size", "longest", "expected"),
    [
        ((400, 200), 100, (100, 50)),
        ((200, 400), 100, (50, 100)),
        ((300, 300), 64, (64, 64)),
        ((400, 200), 400, (400, 200)),
        ((400, 200), None, (400, 200)),
    ],
)
def test_fit_size_examples(size: tuple[int, int], longest: int | None, expected: tuple[int, int]) -> None:
    assert fit_size(size, longest) == expected


@pytest.mark.parametrize("size", [(1000, 333), (333, 1000), (1024, 768), (17, 1013), (5000, 1)])
@pytest.mark.parametrize("longest", [1, 7, 256, 512])
def test_fit_size_longest_exact_and_aspect_kept(size: tuple[int, int], longest: int) -> None:
    w, h = fit_size(size, longest)
    assert max(w, h) == longest
    assert w >= 1 and h >= 1
    scale = longest / max(size)
    assert abs(w - size[0] * scale) <= 0.5 + 1e-9 or w == 1
    assert abs(h - size[1] * scale) <= 0.5 + 1e-9 or h == 1


def test_fit_size_never_upscales_by_default() -> None:
    assert fit_size((120, 80), 1000) == (120, 80)
    assert fit_size((120, 80), 1000, allow_upscale=False) == (120, 80)


def test_fit_size_upscales_when_allowed() -> None:
    assert fit_size((120, 80), 600, allow_upscale=True) == (600, 400)


@pytest.mark.parametrize("bad", [0, -5])
def test_fit_size_rejects_non_positive(bad: int) -> None:
    with pytest.raises(ImageError) as info:
        fit_size((100, 100), bad)
    assert_one_line_error(info, str(bad))


# --------------------------------------------------------------------------- save_image


def test_save_png_round_trip(tmp_path: Path, rgb_array: np.ndarray) -> None:
    out = save_image(Image.fromarray(rgb_array), tmp_path / "out.png")
    assert out == tmp_path / "out.png"
    with Image.open(out) as back:
        assert back.format == "PNG"
        np.testing.assert_array_equal(np.asarray(back.convert("RGB")), rgb_array)


@pytest.mark.parametrize("name", ["out.jpg", "out.JPEG"])
def test_save_jpeg_round_trip(tmp_path: Path, name: str) -> None:
    arr = np.zeros((16, 16, 3), np.uint8)
    arr[:, :8] = (200, 40, 40)
    arr[:, 8:] = (30, 90, 220)
    out = save_image(Image.fromarray(arr), tmp_path / name)
    with Image.open(out) as back:
        assert back.format == "JPEG"
        diff = np.abs(np.asarray(back.convert("RGB")).astype(int) - arr.astype(int))
    assert diff.mean() < 6


@pytest.mark.parametrize("name", ["out.bmp", "out.gif", "out"])
def test_save_unknown_extension(tmp_path: Path, rgb_array: np.ndarray, name: str) -> None:
    with pytest.raises(ImageError) as info:
        save_image(Image.fromarray(rgb_array), tmp_path / name)
    assert_one_line_error(info, ".png")
    assert not (tmp_path / name).exists()


def test_save_creates_parent_dirs(tmp_path: Path, rgb_array: np.ndarray) -> None:
    target = tmp_path / "a" / "b" / "c" / "out.png"
    save_image(Image.fromarray(rgb_array), target)
    assert target.is_file()
    np.testing.assert_array_equal(rgb(load_image(target)), rgb_array)


def test_save_into_a_file_as_folder_is_image_error(tmp_path: Path, rgb_array: np.ndarray) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(ImageError) as info:
        save_image(Image.fromarray(rgb_array), blocker / "out.png")
    assert_one_line_error(info)


def test_failed_load_closes_the_file(opened_images: list, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    full = tmp_path / "full.jpg"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(full, quality=90)
    cut = tmp_path / "cut.jpg"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    opened = opened_images
    with pytest.raises(ImageError):
        load_image(cut)
    monkeypatch.setattr(image_io, "MAX_PIXELS", 10)
    with pytest.raises(ImageError):
        load_image(full)
    assert len(opened) == 2
    assert all(img.fp is None for img in opened)  # closed, not left for the garbage collector
