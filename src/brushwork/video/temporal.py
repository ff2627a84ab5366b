"""Stylize a video frame by frame, made temporally consistent with optical flow, resumable.

A one-pass stylizer run on each frame alone flickers: a small change in the photo moves the
painted strokes around. Here each new stylized frame is blended with the previous *output*
frame warped along the input's optical flow, wherever that flow passes a forward-backward
check (occluded and newly revealed pixels take the fresh frame alone)::

    out_t = mask * (w * warp(out_{t-1}) + (1 - w) * stylized_t) + (1 - mask) * stylized_t

Averaging frames whose painted strokes do not line up also averages the strokes away (a plain
blend at w = 0.7 keeps ~40% of the local contrast on AdaIN output); :func:`restore_detail` scales
the blend's local detail back up to the fresh frame's level. The stroke *pattern* stays the
steady one from the blend, so the flicker stays low while the picture stays crisp.

Flicker is measured the same way it is removed: the mean absolute difference between
``out_t`` and the warped ``out_{t-1}`` over the reliable pixels (:func:`warp_error`).

Long videos survive a kill: stylized frames are kept as lossless PNGs with one JSON line each
in a work folder beside the output (``OUT.work``) and encoded a segment (120 frames) at a time;
the same call again continues after the last frame on disk (its exact pixels seed the blend, so a
resumed video has the frames of an uninterrupted one), joins the segments and the audio into the
output at the end and removes the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from brushwork.errors import ConfigError
from brushwork.video.flow import FlowEstimator, _cv2, to_gray, warp
from brushwork.video.io import (
    VideoError,
    VideoInfo,
    check_output,
    encode_segment,
    frame_size,
    iter_frames,
    join_segments,
    probe_video,
)

#: What the flicker number means, for reports.
FLICKER_METRIC = "mean |out_t - warp(out_t-1)| over flow-consistent pixels, 8-bit levels (input flow, DIS)"
DEFAULT_TEMPORAL_WEIGHT = 0.7
#: Frames encoded together as the run goes: the work folder never holds more lossless PNGs than this
#: (~5 MB each at 1080p), and a kill costs no encoded work.
SEGMENT_FRAMES = 120
_STATE_VERSION = 1
#: Options that change speed, not pictures: a run may resume on another device or engine.
_RESUME_IGNORES = ("device", "engine", "precision")


@dataclass
class VideoProgress:
    """Passed to the progress callback: which stage, frames done (resumed ones included), of how many."""

    stage: str  # "stylize" or "encode"
    done: int
    total: int | None
    flicker: float | None = None  # running mean warp error of the output


@dataclass
class VideoResult:
    input: Path
    output: Path
    frames: int
    fps: float
    size: tuple[int, int]
    seconds: float  # wall time of this call (a resumed run counts only its own part)
    seconds_per_frame: float  # stylize + flow + blend per frame, over all frames (resumed ones included)
    flicker: float | None  # warp error of the output (see FLICKER_METRIC); None for a one-frame video
    input_flicker: float | None  # the same measure on the input frames: what the flow alone cannot explain
    temporal: bool
    temporal_weight: float
    resumed_frames: int
    audio: str  # "copied", "re-encoded (CODEC)" or "none"
    variable_frame_rate: bool
    notes: list[str] = field(default_factory=list)


def warp_error(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean |cur - warp(prev, flow)| over pixels where ``mask`` > 0.5, in 8-bit levels (0..255);
    None when no pixel is reliable (a scene cut)."""
    sel = mask > 0.5
    if not sel.any():
        return None
    diff = np.abs(cur.astype(np.float32) - warp(prev, flow).astype(np.float32))
    return float(diff[sel].mean())


def blend(stylized: np.ndarray, warped_prev: np.ndarray, mask: np.ndarray, weight: float) -> np.ndarray:
    """``mask * (w * warped_prev + (1 - w) * stylized) + (1 - mask) * stylized`` as uint8."""
    a = (mask * weight)[..., None].astype(np.float32)
    out = stylized.astype(np.float32) * (1 - a) + warped_prev.astype(np.float32) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def restore_detail(blended: np.ndarray, stylized: np.ndarray, *, sigma: float = 2.0,
                   max_gain: float = 2.0) -> np.ndarray:
    """``blended`` with its local contrast (difference from a ``sigma`` px local mean) scaled up to
    the local contrast of ``stylized``, by at most ``max_gain``, never down (uint8 out). Where the
    blend took the fresh frame alone (mask 0) the two match and nothing changes."""
    cv2 = _cv2()
    b, s = blended.astype(np.float32), stylized.astype(np.float32)
    mean_b = cv2.GaussianBlur(b, (0, 0), sigma)
    detail = b - mean_b
    var_b = cv2.GaussianBlur(detail * detail, (0, 0), 2 * sigma)
    d_s = s - cv2.GaussianBlur(s, (0, 0), sigma)
    var_s = cv2.GaussianBlur(d_s * d_s, (0, 0), 2 * sigma)
    gain = np.clip(np.sqrt((var_s + 1.0) / (var_b + 1.0)), 1.0, max_gain)
    return np.clip(mean_b + detail * gain + 0.5, 0, 255).astype(np.uint8)


def measure_flicker(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray], *,
                    estimator: FlowEstimator | None = None) -> float | None:
    """Mean warp error between consecutive ``outputs``, with the flow and its reliability mask
    taken from the matching ``inputs`` (HxWx3 uint8 frames of one size). Lower = steadier."""
    estimator = estimator or FlowEstimator()
    errs: list[float] = []
    prev_gray = prev_out = None
    for rgb, out in zip(inputs, outputs):
        gray = to_gray(rgb)
        if prev_gray is not None:
            flow, mask = estimator.backward(prev_gray, gray)
            e = warp_error(prev_out, out, flow, mask)
            if e is not None:
                errs.append(e)
        prev_gray, prev_out = gray, out
    return statistics.fmean(errs) if errs else None


def work_dir_for(output: str | Path) -> Path:
    """The folder beside ``output`` that holds a run's frames until the video is encoded."""
    output = Path(output).expanduser()
    return output.with_name(output.name + ".work")


def _fingerprint(stylizer: Any) -> Any:
    describe = getattr(stylizer, "describe", None)
    if callable(describe):
        d = dict(describe())
        for k in _RESUME_IGNORES:
            d.pop(k, None)
        return d
    return getattr(stylizer, "__qualname__", type(stylizer).__qualname__)


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


class _WorkFolder:
    """A run's progress on disk, so a kill loses at most the frame being stylized.

    ``state.json`` holds the settings; ``frames.jsonl`` one line per stylized frame (timestamp,
    flicker, seconds); frames wait as lossless PNGs (``000123.png``) until ``segment_frames`` of
    them are encoded into a segment (``seg_00004.mp4``, listed in ``segments.jsonl``) and deleted,
    so the folder holds at most one segment of PNGs. The newest frame's PNG is always kept: the
    blend of a resumed run starts from its exact pixels.
    """

    def __init__(self, path: Path, settings: dict[str, Any], restart: bool, info: VideoInfo,
                 size: tuple[int, int], suffix: str, crf: int, segment_frames: int, watermark: bool = True) -> None:
        self.watermark = watermark
        self.path, self.info, self.size, self.suffix, self.crf = path, info, size, suffix, crf
        self.segment_frames = segment_frames
        self.settings = _jsonable(settings)
        state_file = path / "state.json"
        if restart and path.exists():
            shutil.rmtree(path, ignore_errors=True)
        if path.exists() and not path.is_dir():
            raise VideoError(f"cannot keep frames in {path}: a file of that name is in the way")
        self.records: list[dict[str, Any]] = []
        self.segments: list[dict[str, Any]] = []
        if state_file.is_file():
            try:
                old = json.loads(state_file.read_text())
            except (OSError, ValueError):
                old = None
            if isinstance(old, dict) and old.get("version") == _STATE_VERSION and old.get("settings") != self.settings:
                changed = sorted(k for k in set(old["settings"]) | set(self.settings)
                                 if old["settings"].get(k) != self.settings.get(k))
                raise ConfigError(f"{path} holds frames of a run with other settings ({', '.join(changed)} "
                                  "differ): run the same command again to continue it, or restart "
                                  "(--restart) to start over")
            if isinstance(old, dict) and old.get("settings") == self.settings:
                self._read_progress()
        try:
            path.mkdir(parents=True, exist_ok=True)
            _write_atomic(state_file, json.dumps({"version": _STATE_VERSION, "settings": self.settings}, indent=1))
            # rewrite the logs without a line torn by a kill, so appends continue from a clean end
            _write_atomic(path / "frames.jsonl", "".join(json.dumps(r) + "\n" for r in self.records))
            _write_atomic(path / "segments.jsonl", "".join(json.dumps(r) + "\n" for r in self.segments))
            self._log = (path / "frames.jsonl").open("a")
        except OSError as exc:
            raise VideoError(f"cannot keep frames in {path}: {exc.strerror or exc}") from exc

    @property
    def encoded(self) -> int:
        """Frames already in segments (they are 0 .. encoded - 1)."""
        return self.segments[-1]["last"] + 1 if self.segments else 0

    def frame_path(self, i: int) -> Path:
        return self.path / f"{i:06d}.png"

    def segment_path(self, k: int) -> Path:
        return self.path / f"seg_{k:05d}.mp4"

    def _read_progress(self) -> None:
        """What an earlier run finished: segments and frame lines, contiguous from frame 0."""
        for rec in _read_jsonl(self.path / "segments.jsonl"):
            if rec.get("k") != len(self.segments) or rec.get("first") != self.encoded \
                    or not isinstance(rec.get("start_pts"), int) or not self.segment_path(len(self.segments)).is_file():
                break
            self.segments.append(rec)
        for rec in _read_jsonl(self.path / "frames.jsonl"):
            i = len(self.records)
            if rec.get("i") != i or (i >= self.encoded and not self.frame_path(i).is_file()):
                break
            self.records.append(rec)
        while self.segments and self.segments[-1]["last"] >= len(self.records):  # lines lost: redo the segment
            self.segments.pop()
        if self.records and not self.frame_path(len(self.records) - 1).is_file():
            # the newest frame seeds the blend; without it, continue from the last segment's start
            keep = self.encoded
            self.records = self.records[:keep] if self.frame_path(keep - 1).is_file() else []
            if not self.records:
                self.segments = []

    def load(self, i: int) -> np.ndarray:
        try:
            with Image.open(self.frame_path(i)) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise VideoError(f"stylized frame {self.frame_path(i)} is unreadable ({exc}): "
                             "restart (--restart) to start over") from exc

    def add(self, rgb: np.ndarray, record: dict[str, Any]) -> None:
        """Write the frame (atomically), then its line: a kill between the two only redoes this frame.
        Every ``segment_frames`` frames, encode them and delete their PNGs."""
        path = self.frame_path(record["i"])
        tmp = path.with_suffix(".tmp.png")
        try:
            Image.fromarray(rgb).save(tmp, "PNG", compress_level=1)
            os.replace(tmp, path)
            self._log.write(json.dumps(record) + "\n")
            self._log.flush()
        except OSError as exc:
            raise VideoError(f"cannot keep frames in {self.path}: {exc.strerror or exc}") from exc
        self.records.append(record)
        if len(self.records) - self.encoded >= self.segment_frames:
            self.close_segment()

    def close_segment(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Encode the frames not yet in a segment into the next one, then drop their PNGs (all but the newest)."""
        first, last = self.encoded, len(self.records) - 1
        if last < first:
            return
        k = len(self.segments)

        def frames() -> Iterator[tuple[int, np.ndarray]]:
            for i in range(first, last + 1):
                rgb = self.load(i)
                if self.watermark:  # after the temporal blend (which must not see it), just before encoding
                    from brushwork.provenance import embed_watermark

                    rgb = np.asarray(embed_watermark(Image.fromarray(rgb))[0])
                yield self.records[i]["pts"], rgb
                if progress:
                    progress(i - first + 1, last - first + 1)

        start = encode_segment(frames(), self.segment_path(k), self.info, self.size, crf=self.crf,
                               codec_for=self.suffix)
        seg = {"k": k, "first": first, "last": last, "start_pts": start}
        try:
            with (self.path / "segments.jsonl").open("a") as f:
                f.write(json.dumps(seg) + "\n")
        except OSError as exc:
            raise VideoError(f"cannot keep frames in {self.path}: {exc.strerror or exc}") from exc
        self.segments.append(seg)
        for i in range(max(0, first - 1), last):  # the previous segment's newest frame is not needed any more
            self.frame_path(i).unlink(missing_ok=True)

    def segment_files(self) -> list[tuple[Path, int]]:
        return [(self.segment_path(s["k"]), s["start_pts"]) for s in self.segments]

    def close(self) -> None:
        self._log.close()


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The lines of a log up to the first one that is not a JSON object (a line torn by a kill)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            return
        if not isinstance(rec, dict):
            return
        yield rec


def _variable_rate(pts: list[int]) -> bool:
    diffs = np.diff(np.asarray(pts, dtype=np.int64))
    if len(diffs) < 2:
        return False
    med = float(np.median(diffs))
    return bool(med > 0 and (diffs.max() - diffs.min()) > max(1.0, 0.1 * med))


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def stylize_video(input: str | Path, output: str | Path, stylizer: Callable[[Image.Image], Image.Image], *,
                  size: int | None = None, temporal: bool = True,
                  temporal_weight: float = DEFAULT_TEMPORAL_WEIGHT, max_frames: int | None = None,
                  progress: Callable[[VideoProgress], None] | None = None, restart: bool = False,
                  restore: bool = True, flow_preset: str = "medium", flow_size: int | None = 640,
                  measure: bool = True, crf: int = 18, audio: bool = True,
                  segment_frames: int = SEGMENT_FRAMES, watermark: bool = True) -> VideoResult:
    """Stylize every frame of ``input`` into ``output``, keeping its timing and audio.

    ``stylizer`` turns a PIL image into a stylized one of the same size: an
    :class:`brushwork.pipeline.ImageStylizer` (model loaded once) or any callable. ``size`` is
    the frames' longest side (never enlarged; default: the stylizer's ``options.size``, else the
    video's own). ``temporal`` blends each frame with the previous output warped by optical flow,
    ``temporal_weight`` (0..1) of it where the flow is reliable, then restores the local contrast the
    blend averaged away (``restore``; False keeps the plain, softer blend); ``temporal=False``
    stylizes frames independently.
    ``max_frames`` stops early (a preview). ``progress`` gets a :class:`VideoProgress` after each
    frame (its ``done`` counts resumed frames too, so the first report of a resumed run is past 1).
    Run again after an interruption with the same arguments to continue; ``restart`` discards
    the frames of an earlier run instead. ``flow_size`` caps the side the optical flow is computed
    at; ``measure=False`` skips the flicker measure (and the flow, when ``temporal`` is off too).
    Frames are encoded ``segment_frames`` at a time as the run goes (``crf``: x264/VP9 quality) and
    the segments joined, with the audio, at the end; each frame gets brushwork's invisible watermark just
    before encoding unless ``watermark`` is False.
    """
    t0 = time.perf_counter()
    if not 0 <= temporal_weight <= 1:
        raise ConfigError(f"temporal weight must be between 0 and 1, got {temporal_weight}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max frames must be at least 1, got {max_frames}")
    if not 0 <= crf <= 51:
        raise ConfigError(f"crf must be between 0 and 51, got {crf}")
    if segment_frames < 1:
        raise ConfigError(f"segment frames must be at least 1, got {segment_frames}")
    input, output = Path(input).expanduser(), Path(output).expanduser()
    if size is None:
        size = getattr(getattr(stylizer, "options", None), "size", None)
    if size is not None and size < 2:
        raise ConfigError(f"size must be a positive number of pixels, got {size}")
    info = probe_video(input)
    check_output(output)
    if output.exists() and output.resolve() == input.resolve():
        raise ConfigError(f"output would overwrite the input video: {output}")
    w, h = frame_size(info, size)
    stat = input.stat()
    settings = {"input": str(input.resolve()), "input_bytes": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
                "size": [w, h], "temporal": temporal, "temporal_weight": temporal_weight if temporal else None,
                "restore": restore if temporal else None,
                "flow": [flow_preset, flow_size] if temporal else None, "stylizer": _fingerprint(stylizer),
                "format": output.suffix.lower(), "crf": crf}
    if not watermark:  # only when off, so the work folders of earlier runs stay valid
        settings["watermark"] = False
    estimator = FlowEstimator(flow_preset, flow_size)
    use_flow = (temporal and temporal_weight > 0) or measure
    work = _WorkFolder(work_dir_for(output), settings, restart, info, (w, h), output.suffix.lower(), crf,
                       segment_frames, watermark)
    notes: list[str] = []
    try:
        resumed = len(work.records)
        if max_frames is not None and resumed > max_frames:
            if work.encoded > max_frames:
                raise ConfigError(f"{work.path} already holds {work.encoded} encoded frames, more than --max-frames "
                                  f"{max_frames}: continue without it, or restart (--restart) to start over")
            work.records = work.records[:max_frames]
        total = info.estimated_frames
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        errs = [r.get("err") for r in work.records]
        prev_gray = prev_out = prev_rgb = None
        end_pts: int | None = None
        for frame in iter_frames(info, (w, h), skip=len(work.records)):
            i = frame.index
            if i < len(work.records):  # finished in an earlier run
                if work.records[i]["pts"] != frame.pts:
                    raise VideoError(f"{work.path} does not match {input} (frame {i} has another timestamp): "
                                     "restart (--restart) to start over")
                if i == len(work.records) - 1:
                    prev_rgb, prev_gray, prev_out = frame.rgb, to_gray(frame.rgb), work.load(i)
                continue
            if max_frames is not None and i >= max_frames:
                end_pts = frame.pts  # the audio stops where the next frame would have started
                break
            ts = time.perf_counter()
            rgb = frame.rgb
            styled_img = stylizer(Image.fromarray(rgb)).convert("RGB")
            if styled_img.size != (w, h):
                if not any("stylizer returned" in n for n in notes):
                    notes.append(f"stylizer returned {styled_img.size[0]}x{styled_img.size[1]} frames; "
                                  f"resized to {w}x{h}")
                styled_img = styled_img.resize((w, h), Image.Resampling.LANCZOS)
            styled = np.asarray(styled_img)
            gray = to_gray(rgb)
            err = in_err = None
            out = styled
            if prev_gray is not None and use_flow:
                flow, mask = estimator.backward(prev_gray, gray)
                if temporal and temporal_weight > 0:
                    out = blend(styled, warp(prev_out, flow, cubic=True), mask, temporal_weight)
                    if restore:
                        out = restore_detail(out, styled)
                if measure:
                    err = warp_error(prev_out, out, flow, mask)
                    in_err = warp_error(prev_rgb, rgb, flow, mask)
            work.add(out, {"i": i, "pts": frame.pts, "err": err, "in_err": in_err,
                           "s": round(time.perf_counter() - ts, 4)})
            errs.append(err)
            prev_rgb, prev_gray, prev_out = rgb, gray, out
            if progress:
                progress(VideoProgress("stylize", len(work.records), total, _mean(errs)))
        if not work.records:
            raise VideoError(f"no frames could be decoded from {input}")
        n = len(work.records)
        pts = [r["pts"] for r in work.records]
        vfr = _variable_rate(pts)
        if vfr:
            notes.append("variable frame rate: each frame keeps its own timestamp")

        flicker = _mean(errs)
        work.close_segment(progress and (lambda done, todo: progress(VideoProgress("encode", done, todo, flicker))))
        audio_done = join_segments(work.segment_files(), output, info, end_pts=end_pts, audio=audio)
        records = list(work.records)
    except BaseException:
        work.close()
        if not work.records:  # nothing worth resuming: leave no folder behind
            shutil.rmtree(work.path, ignore_errors=True)
        raise
    work.close()
    shutil.rmtree(work.path, ignore_errors=True)
    return VideoResult(
        input=input, output=output, frames=n, fps=float(info.fps), size=(w, h),
        seconds=time.perf_counter() - t0, seconds_per_frame=statistics.fmean(r["s"] for r in records),
        flicker=_mean(r.get("err") for r in records), input_flicker=_mean(r.get("in_err") for r in records),
        temporal=temporal and temporal_weight > 0, temporal_weight=temporal_weight if temporal else 0.0,
        resumed_frames=min(resumed, n), audio=audio_done, variable_frame_rate=vfr, notes=notes)

