"""Stylize a video frame by frame, made temporally consistent with optical flow, resumable.

A one-pass stylizer run on each frame alone flickers: a small change in the photo moves the
painted strokes around. Here each new stylized frame is blended with the previous *output*
frame warped along the input's optical flow, wherever that flow passes a forward-backward
check (occluded and newly revealed pixels take the fresh frame alone)::

    out_t = mask * (w * warp(out_{t-1}) + (1 - w) * stylized_t) + (1 - mask) * stylized_t

Flicker is measured the same way it is removed: the mean absolute difference between
``out_t`` and the warped ``out_{t-1}`` over the reliable pixels (:func:`warp_error`).

Long videos survive a kill: stylized frames are kept as lossless PNGs with one JSON line each
in a work folder beside the output (``OUT.work``); the same call again continues after the last
frame on disk (its exact pixels seed the blend, so a resumed video equals an uninterrupted one),
encodes the whole video at the end and removes the folder.
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
from brushwork.video.flow import FlowEstimator, to_gray, warp
from brushwork.video.io import VideoError, check_output, encode_video, frame_size, iter_frames, probe_video

#: What the flicker number means, for reports.
FLICKER_METRIC = "mean |out_t - warp(out_t-1)| over flow-consistent pixels, 8-bit levels (input flow, DIS)"
DEFAULT_TEMPORAL_WEIGHT = 0.7
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
    """Frames on disk (``000000.png``...), one line each in ``frames.jsonl``, settings in ``state.json``."""

    def __init__(self, path: Path, settings: dict[str, Any], restart: bool) -> None:
        self.path = path
        self.settings = _jsonable(settings)
        state_file = path / "state.json"
        if restart and path.exists():
            shutil.rmtree(path)
        if path.exists() and not path.is_dir():
            raise VideoError(f"cannot keep frames in {path}: a file of that name is in the way")
        self.records: list[dict[str, Any]] = []
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
                self.records = self._read_records()
        try:
            path.mkdir(parents=True, exist_ok=True)
            tmp = state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"version": _STATE_VERSION, "settings": self.settings}, indent=1))
            os.replace(tmp, state_file)
            # rewrite the log without a line torn by a kill, so appends continue from a clean end
            log = path / "frames.jsonl"
            tmp = log.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records))
            os.replace(tmp, log)
            self._log = log.open("a")
        except OSError as exc:
            raise VideoError(f"cannot keep frames in {path}: {exc.strerror or exc}") from exc

    def frame_path(self, i: int) -> Path:
        return self.path / f"{i:06d}.png"

    def _read_records(self) -> list[dict[str, Any]]:
        """The frames finished before: contiguous from 0, each with its line and its PNG."""
        records: list[dict[str, Any]] = []
        try:
            lines = (self.path / "frames.jsonl").read_text().splitlines()
        except OSError:
            return records
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                break
            if not isinstance(rec, dict) or rec.get("i") != len(records) or not self.frame_path(len(records)).is_file():
                break
            records.append(rec)
        return records

    def load(self, i: int) -> np.ndarray:
        try:
            with Image.open(self.frame_path(i)) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise VideoError(f"stylized frame {self.frame_path(i)} is unreadable ({exc}): "
                             "restart (--restart) to start over") from exc

    def add(self, rgb: np.ndarray, record: dict[str, Any]) -> None:
        """Write the frame (atomically), then its line: a kill between the two only redoes this frame."""
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

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        for rec in self.records:
            yield rec["pts"], self.load(rec["i"])

    def close(self) -> None:
        self._log.close()


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
                  flow_preset: str = "medium", crf: int = 18, audio: bool = True) -> VideoResult:
    """Stylize every frame of ``input`` into ``output``, keeping its timing and audio.

    ``stylizer`` turns a PIL image into a stylized one of the same size: an
    :class:`brushwork.pipeline.ImageStylizer` (model loaded once) or any callable. ``size`` is
    the frames' longest side (never enlarged; default: the stylizer's ``options.size``, else the
    video's own). ``temporal`` blends each frame with the previous output warped by optical flow,
    ``temporal_weight`` (0..1) of it where the flow is reliable; False stylizes frames independently.
    ``max_frames`` stops early (a preview). ``progress`` gets a :class:`VideoProgress` after each
    frame (its ``done`` counts resumed frames too, so the first report of a resumed run is past 1).
    Run again after an interruption with the same arguments to continue; ``restart`` discards
    the frames of an earlier run instead.
    """
    t0 = time.perf_counter()
    if not 0 <= temporal_weight <= 1:
        raise ConfigError(f"temporal weight must be between 0 and 1, got {temporal_weight}")
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"max frames must be at least 1, got {max_frames}")
    if not 0 <= crf <= 51:
        raise ConfigError(f"crf must be between 0 and 51, got {crf}")
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
                "flow": flow_preset, "stylizer": _fingerprint(stylizer)}
    estimator = FlowEstimator(flow_preset)
    work = _WorkFolder(work_dir_for(output), settings, restart)
    notes: list[str] = []
    try:
        resumed = len(work.records)
        if max_frames is not None and resumed > max_frames:
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
            if prev_gray is not None:
                flow, mask = estimator.backward(prev_gray, gray)
                if temporal and temporal_weight > 0:
                    out = blend(styled, warp(prev_out, flow), mask, temporal_weight)
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

        def encoded() -> Iterator[tuple[int, np.ndarray]]:
            for k, item in enumerate(work.frames()):
                yield item
                if progress:
                    progress(VideoProgress("encode", k + 1, n, _mean(errs)))

        audio_done = encode_video(encoded(), output, info, (w, h), end_pts=end_pts, audio=audio, crf=crf)
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

