"""Video stylization end to end on tiny generated clips (a pan over a real photo, with a sine
soundtrack): frame count, fps and timestamps kept, audio copied packet for packet, flicker lowered
by the temporal blend, resumable after a kill, and one-line errors for bad input.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from brushwork.cli.main import main  # noqa: E402
from brushwork.errors import ConfigError  # noqa: E402
from brushwork.pipeline import ImageStylizer, StylizeOptions  # noqa: E402
from brushwork.video import VideoError, measure_flicker, probe_video, stylize_video, work_dir_for  # noqa: E402

W, H, N, FPS = 64, 48, 12, 24
ERROR_LINE = re.compile(r"^brushwork( [a-z]+)?: error: \S")


def make_clip(path: Path, photo: Path, *, n: int = N, audio: bool = True, pts: list[int] | None = None,
              time_base: Fraction | None = None, rotation: int | None = None, step: int = 2) -> Path:
    """A W x H pan (``step`` px per frame) across ``photo``, H.264, with a 440 Hz AAC track."""
    img = Image.open(photo).convert("RGB")
    img = img.resize((round(img.width * 2 * H / img.height), 2 * H), Image.Resampling.LANCZOS)
    arr = np.asarray(img)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=FPS)
        v.width, v.height, v.pix_fmt = W, H, "yuv420p"
        v.options = {"crf": "12"}
        if time_base is not None:
            v.time_base = v.codec_context.time_base = time_base
        if rotation is not None:
            v.set_display_rotation(rotation)
        if audio:
            a = out.add_stream("aac", rate=22050)
            a.layout = "mono"
        for i in range(n):
            crop = np.ascontiguousarray(arr[H // 2:H // 2 + H, i * step:i * step + W])
            frame = av.VideoFrame.from_ndarray(crop, format="rgb24")
            frame.pts = i if pts is None else pts[i]
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode(None):
            out.mux(p)
        if audio:
            t = np.arange(22050 * n // FPS) / 22050
            sound = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                               format="fltp", layout="mono")
            sound.sample_rate, sound.pts = 22050, 0
            for p in [*a.encode(sound), *a.encode(None)]:
                out.mux(p)
    return path


def decode(path: Path) -> tuple[list[np.ndarray], list[float]]:
    """RGB frames and their times in seconds."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
        return [f.to_ndarray(format="rgb24") for f in frames], [float(f.time) for f in frames]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


@pytest.fixture(scope="module")
def photo(media_files) -> Path:
    """Matplotlib's Grace Hopper photo, 512x384 (tests/media.py): the clips pan across it."""
    return media_files.photo


@pytest.fixture(scope="module")
def clip(photo: Path, tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "pan.mp4", photo)


@pytest.fixture(scope="module")
def adain() -> ImageStylizer:
    """The shipped AdaIN decoder with a preset, at the clip's own size (one model load for the module)."""
    return ImageStylizer(StylizeOptions(styles=[("starry_night", 1.0)], size=64))


@pytest.fixture(scope="module")
def runs(clip: Path, adain: ImageStylizer, tmp_path_factory) -> dict[bool, Any]:
    """The clip stylized with and without temporal consistency."""
    folder = tmp_path_factory.mktemp("runs")
    return {t: stylize_video(clip, folder / f"t{int(t)}.mp4", adain, temporal=t) for t in (True, False)}


class Counting:
    """A stylizer that counts its calls and can stop the run (a kill) after ``stop_after`` frames."""

    def __init__(self, inner: ImageStylizer, stop_after: int | None = None) -> None:
        self.inner, self.stop_after, self.calls = inner, stop_after, 0
        self.describe = inner.describe

    def __call__(self, img: Image.Image) -> Image.Image:
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.inner(img)


def test_output_keeps_frames_fps_size_and_copies_audio(clip, runs):
    result = runs[True]
    frames, times = decode(result.output)
    _, in_times = decode(clip)
    assert result.frames == len(frames) == N
    assert times == pytest.approx(in_times, abs=1e-3)
    info = probe_video(result.output)
    assert info.fps == FPS and (info.width, info.height) == (W, H) and info.codec == "h264"
    assert result.audio == "copied" and info.audio_codecs == ("aac",)
    assert audio_packets(result.output) == audio_packets(clip)  # remuxed bit for bit, not re-encoded
    assert not work_dir_for(result.output).exists()


def test_temporal_blend_lowers_flicker(clip, runs):
    steady, flickery = runs[True], runs[False]
    assert steady.flicker < 0.6 * flickery.flicker
    assert steady.input_flicker == pytest.approx(flickery.input_flicker)
    # measured again from the encoded files, as a user would
    inputs, _ = decode(clip)
    assert measure_flicker(inputs, decode(steady.output)[0]) < 0.7 * measure_flicker(inputs, decode(flickery.output)[0])
    # and the blend did not wash the strokes out: as much local contrast as frame by frame, far from the photo
    assert sharpness(decode(steady.output)[0]) > 0.8 * sharpness(decode(flickery.output)[0])
    assert np.abs(decode(steady.output)[0][-1].astype(float) - inputs[-1]).mean() > 20


def sharpness(frames: list[np.ndarray]) -> float:
    """Mean |Laplacian| of the luma: how crisp the strokes are."""
    import cv2

    return float(np.mean([np.abs(cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F)).mean()
                          for f in frames]))


def test_killed_run_resumes_where_it_stopped(clip, adain, tmp_path):
    out = tmp_path / "resumed.mp4"
    first = Counting(adain, stop_after=6)
    with pytest.raises(KeyboardInterrupt):  # lossless (crf 0) to compare pixels: x264's choices vary per run
        stylize_video(clip, out, first, crf=0, segment_frames=4)
    work = work_dir_for(out)
    # frames 0-3 are encoded as a segment; only the newest of them is kept as a PNG (it seeds the blend)
    assert sorted(p.name for p in work.glob("seg_*")) == ["seg_00000.mp4"]
    assert sorted(p.name for p in work.glob("*.png")) == [f"{i:06d}.png" for i in (3, 4, 5)]
    assert not out.exists()
    second = Counting(adain)
    result = stylize_video(clip, out, second, crf=0, segment_frames=4)
    assert second.calls == N - 6 and result.resumed_frames == 6 and result.frames == N
    assert not work.exists()
    frames, times = decode(out)
    assert len(frames) == N and times == pytest.approx([i / FPS for i in range(N)], abs=1e-3)
    assert audio_packets(out) == audio_packets(clip)
    # the resumed blend continued from the exact frame on disk: the frames of an uninterrupted run
    straight, _ = decode(stylize_video(clip, tmp_path / "straight.mp4", adain, crf=0).output)
    assert all(np.array_equal(a, b) for a, b in zip(frames, straight))


def test_resume_with_other_settings_is_refused_until_restart(clip, adain, tmp_path):
    out = tmp_path / "o.mp4"
    with pytest.raises(KeyboardInterrupt):
        stylize_video(clip, out, Counting(adain, stop_after=3), max_frames=6)
    with pytest.raises(ConfigError, match="temporal_weight"):
        stylize_video(clip, out, adain, temporal_weight=0.3, max_frames=6)
    counting = Counting(adain)
    result = stylize_video(clip, out, counting, temporal_weight=0.3, max_frames=6, restart=True)
    assert counting.calls == 6 and result.resumed_frames == 0


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_segments_join_into_one_stream_with_exact_timing(clip, tmp_path, suffix):
    # 12 frames in segments of 5: the last one has 2 frames and, unlike the others, no B-frame delay
    result = stylize_video(clip, tmp_path / f"seg{suffix}", lambda img: img, segment_frames=5)
    frames, times = decode(result.output)
    info = probe_video(result.output)
    assert len(frames) == N and info.fps == FPS and info.audio_codecs == ("aac",)
    steps = np.diff(times)
    assert steps == pytest.approx([1 / FPS] * (N - 1), abs=1.5e-3)  # Matroska keeps milliseconds
    assert max(np.abs(a.astype(float) - b).mean() for a, b in zip(frames, decode(clip)[0])) < 8


def test_max_frames_preview_trims_the_audio_too(clip, tmp_path):
    result = stylize_video(clip, tmp_path / "p.mp4", lambda img: img, max_frames=5)
    assert result.frames == len(decode(result.output)[0]) == 5
    with av.open(str(result.output)) as c:
        a = c.streams.audio[0]
        last = max(p.pts + p.duration for p in c.demux(a) if p.size)
        assert float(last * a.time_base) == pytest.approx(5 / FPS, abs=1024 / 22050 + 1e-3)


def test_variable_frame_rate_keeps_each_timestamp(photo, tmp_path):
    pts = [0, 40, 80, 200, 240, 280, 500, 540]  # ms: gaps and bursts
    clip = make_clip(tmp_path / "vfr.mkv", photo, n=len(pts), audio=False, pts=pts, time_base=Fraction(1, 1000))
    result = stylize_video(clip, tmp_path / "vfr_out.mp4", lambda img: img)
    assert result.variable_frame_rate and result.audio == "none"
    assert decode(result.output)[1] == pytest.approx([p / 1000 for p in pts], abs=1e-3)


def test_rotated_phone_video_comes_out_upright(photo, tmp_path):
    clip = make_clip(tmp_path / "rot.mp4", photo, n=3, audio=False, rotation=90)
    result = stylize_video(clip, tmp_path / "rot_out.mp4", lambda img: img, temporal=False)
    frames, _ = decode(result.output)
    assert result.size == (H, W) and frames[0].shape == (W, H, 3)


def test_library_errors_are_one_line_brushwork_errors(clip, tmp_path):
    (tmp_path / "blocker").write_text("a file")
    cases = [
        (tmp_path / "missing.mp4", tmp_path / "o.mp4", "video not found"),
        (clip, tmp_path / "blocker" / "o.mp4", "is a file, not a folder"),
        (clip, tmp_path / "o.avi", "cannot write 'o.avi'"),
    ]
    for src, out, expected in cases:
        with pytest.raises(VideoError, match=expected):
            stylize_video(src, out, lambda img: img)
    with pytest.raises(ConfigError, match="temporal weight"):
        stylize_video(clip, tmp_path / "o.mp4", lambda img: img, temporal_weight=1.5)


# ---------------------------------------------------------------- CLI


def run_fail(capsys, *argv: Any) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and ERROR_LINE.match(lines[0]), err
    assert out == ""
    return lines[0]


def test_cli_json_with_a_feedforward_model(capsys, clip, tiny_cin, tmp_path):
    out = tmp_path / "ff.mp4"
    code = main(["video", str(clip), "-o", str(out), "--model", str(tiny_cin), "-s", "waves:0.5", "-s", "stars:0.5",
                 "--max-frames", "6", "--json"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    info = json.loads(stdout)
    assert info["method"] == "feedforward" and info["frames"] == 6 and info["fps"] == FPS
    assert info["size"] == [W, H] and info["audio"] == "copied"
    assert info["flicker"]["consistency"].startswith("optical-flow blend") and info["flicker"]["warp_error"] >= 0
    assert len(decode(out)[0]) == 6


def test_cli_defaults_match_the_library():
    from brushwork.cli import video as cli_video
    from brushwork.video import DEFAULT_TEMPORAL_WEIGHT

    assert cli_video.DEFAULT_TEMPORAL_WEIGHT == DEFAULT_TEMPORAL_WEIGHT


def test_cli_bad_input_is_one_line_and_exit_2(capsys, clip, photo, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(4000))
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip.read_bytes()[:3000])
    silent = tmp_path / "sound.m4a"
    with av.open(str(silent), "w") as c:
        a = c.add_stream("aac", rate=22050)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 22050, 0
        for p in [*a.encode(frame), *a.encode(None)]:
            c.mux(p)
    (tmp_path / "blocker").write_text("a file")
    out = tmp_path / "o.mp4"
    cases = [
        ((silent, "-o", out, "-s", "starry_night"), "no video stream"),
        ((corrupt, "-o", out, "-s", "starry_night"), "corrupt"),
        ((truncated, "-o", out, "-s", "starry_night"), "corrupt"),
        ((tmp_path / "nope.mp4", "-o", out, "-s", "starry_night"), "not found"),
        ((photo, "-o", out, "-s", "starry_night"), "still image"),
        ((clip, "-o", tmp_path / "blocker" / "o.mp4", "-s", "starry_night"), "cannot write"),
        ((clip, "-o", tmp_path / "o.gif", "-s", "starry_night"), "cannot write"),
        ((clip, "-o", out), "give a trained --model"),
        ((clip, "-o", out, "-s", "starry_night", "--no-temporal", "--temporal-weight", "0.5"), "contradict"),
        ((clip, "-o", out, "-s", "starry_nite"), "starry_night"),
    ]
    for argv, expected in cases:
        assert expected in run_fail(capsys, "video", *argv)
    assert not out.exists() and not work_dir_for(out).exists()


def test_cli_subprocess_corrupt_video_has_a_clean_stderr(tmp_path):
    bad = tmp_path / "bad.mov"
    bad.write_bytes(b"\x00\x00\x00\x18ftypqt  " + os.urandom(2000))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "brushwork", "video", str(bad), "-o", str(tmp_path / "o.mp4"),
                           "-s", "starry_night"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "corrupt" in proc.stderr, proc.stderr
