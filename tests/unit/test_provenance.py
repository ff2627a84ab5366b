"""The watermark (embedding cost, detection, robustness, no false alarm) and the provenance record
(what it holds, what it never holds, how it travels in PNG and JPEG)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import media
import numpy as np
import pytest
from PIL import Image

from brushwork import provenance as P
from brushwork.image.io import save_image


def _psnr(a: Image.Image, b: Image.Image) -> float:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(10 * np.log10(255**2 / max((d**2).mean(), 1e-12)))


def _jpeg(img: Image.Image, q: int) -> Image.Image:
    return P.roundtrip(img, "JPEG", q)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return media.photo((640, 480))


@pytest.fixture(scope="module")
def marked(photo: Image.Image) -> Image.Image:
    out, note = P.embed_watermark(photo)
    assert note is None
    return out


def test_importing_it_does_not_import_torch() -> None:
    code = "import sys, brushwork.provenance, brushwork.cli.inspect; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_watermark_is_invisible_by_psnr(photo: Image.Image, marked: Image.Image) -> None:
    assert marked.size == photo.size and marked.mode == "RGB"
    assert _psnr(photo, marked) >= 40


def test_detected_with_payload(marked: Image.Image) -> None:
    d = P.detect_watermark(marked)
    assert d.detected and d.confidence > 0.999 and d.bits_ok == 32 and d.payload == P.PAYLOAD_TEXT


def test_unmarked_photo_is_not_detected(photo: Image.Image) -> None:
    d = P.detect_watermark(photo)
    assert not d.detected and d.confidence < 0.1 and d.payload is None


@pytest.mark.parametrize("change", ["jpeg50", "half", "crop", "bright"])
def test_survives_common_changes(marked: Image.Image, change: str) -> None:
    w, h = marked.size
    img = {"jpeg50": lambda: _jpeg(marked, 50),
           "half": lambda: marked.resize((w // 2, h // 2), Image.Resampling.LANCZOS),
           "crop": lambda: marked.crop((40, 12, 40 + round(w * 0.9), 12 + round(h * 0.9))),
           "bright": lambda: Image.fromarray(np.clip(np.asarray(marked, np.float32) * 1.1 + 8, 0, 255)
                                             .astype(np.uint8))}[change]()
    assert P.detect_watermark(img).detected


def test_too_small_is_a_note_not_a_failure(tmp_path: Path) -> None:
    tiny = media.photo((48, 36))
    out, note = P.embed_watermark(tiny)
    assert out is tiny and note and "too small" in note
    notes: list[str] = []
    path = save_image(tiny, tmp_path / "tiny.png", notes=notes)
    assert path.is_file() and notes == [note]


def test_alpha_and_gray_modes_keep_their_mode() -> None:
    rgba = media.photo((256, 192)).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 77))
    out, note = P.embed_watermark(rgba)
    assert note is None and out.mode == "RGBA"
    assert np.all(np.asarray(out)[..., 3] == 77)
    gray, note = P.embed_watermark(media.photo((256, 192)).convert("L"))
    assert note is None and gray.mode == "L" and P.detect_watermark(gray).detected


def test_record_has_hashes_not_paths(tmp_path: Path) -> None:
    painting = tmp_path / "private" / "my painting.png"
    painting.parent.mkdir()
    media.photo((64, 48)).save(painting)
    rec = P.build_provenance("optimize", [(str(painting), 0.7), ("starry_night", 0.3)],
                             settings={"strength": 0.8, "weights": str(painting), "mask": True,
                                       "folder": str(tmp_path), "steps": 10})
    text = json.dumps(rec)
    assert str(tmp_path) not in text and "private" not in text and "painting.png" not in text
    assert rec["styles"][0]["sha256"] == P.file_sha256(painting) and rec["styles"][1]["name"] == "starry_night"
    assert rec["settings"] == {"strength": 0.8, "weights": {"sha256": P.file_sha256(painting)}, "mask": True,
                               "steps": 10}
    assert rec["generator"] == "brushwork" and rec["method"] == "optimize" and "date" in rec


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_metadata_round_trip(tmp_path: Path, suffix: str) -> None:
    rec = P.build_provenance("adain", [("starry_night", 1.0)], settings={"strength": 0.5})
    path = save_image(media.photo((256, 192)), tmp_path / f"out{suffix}", provenance=rec)
    with Image.open(path) as back:
        got = P.read_provenance(back)
    assert got == {**rec, "watermark": True}


def test_metadata_off_and_watermark_off(tmp_path: Path, photo: Image.Image) -> None:
    path = save_image(photo, tmp_path / "plain.png", watermark=False)
    with Image.open(path) as back:
        assert P.read_provenance(back) is None and "Software" not in back.info
        np.testing.assert_array_equal(np.asarray(back.convert("RGB")), np.asarray(photo))


def test_jpeg_resaved_by_another_program_keeps_the_watermark(tmp_path: Path, photo: Image.Image) -> None:
    rec = P.build_provenance("adain", [("starry_night", 1.0)])
    path = save_image(photo, tmp_path / "out.jpg", provenance=rec)
    with Image.open(path) as im:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80)  # no exif= / xmp=: the metadata is gone
    buf.seek(0)
    with Image.open(buf) as resaved:
        info = P.inspect_image(resaved)
    assert info["provenance"] is None and info["watermark"]["detected"]


@pytest.mark.parametrize("watermark", [True, False])
def test_video_frames_are_marked_before_encoding(tmp_path: Path, watermark: bool) -> None:
    import av

    from brushwork.video import stylize_video

    src = np.asarray(media.photo((320, 240)))
    clip = tmp_path / "in.mp4"
    with av.open(str(clip), "w") as out:
        v = out.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 256, 192, "yuv420p"
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(src[20:212, 8 * i:8 * i + 256]), format="rgb24")
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
    result = tmp_path / "out.mp4"
    stylize_video(clip, result, lambda im: im, temporal=False, measure=False, watermark=watermark)
    with av.open(str(result)) as back:
        frame = next(back.decode(video=0)).to_image()
    assert P.detect_watermark(frame).detected is watermark


def test_the_shipped_pattern_is_the_seeded_one() -> None:
    """watermark_pattern.bin saves importing numpy.random at start-up; it must stay the PCG64 stream's draw."""
    from brushwork import provenance as prov

    noise, bit_of = prov.generate_pattern()
    assert np.array_equal(prov._NOISE, noise) and np.array_equal(prov._BIT_OF, bit_of)
    assert np.array_equal(prov._TILE_CHIPS, noise * (2.0 * prov.PAYLOAD_BITS[bit_of] - 1.0))
