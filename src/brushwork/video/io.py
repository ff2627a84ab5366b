"""Video decoding and encoding with PyAV (FFmpeg), audio passed through untouched.

Frames keep their own timestamps (``pts`` in the input stream's time base) from decoding to
encoding, so variable-frame-rate videos come out with the same timing as they went in and
audio stays in sync. Audio packets are remuxed (copied bit for bit) when the output container
accepts the codec, and re-encoded only when it does not (e.g. AAC into WebM).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from brushwork.errors import ConfigError, ImageError
from brushwork.image.io import fit_size

#: Output extensions -> video encoders to try, best first (PyAV's wheels bundle libx264 and libvpx).
VIDEO_CODECS: dict[str, tuple[str, ...]] = {
    ".mp4": ("libx264", "h264", "mpeg4"),
    ".m4v": ("libx264", "h264", "mpeg4"),
    ".mov": ("libx264", "h264", "mpeg4"),
    ".mkv": ("libx264", "h264", "mpeg4"),
    ".webm": ("libvpx-vp9", "libvpx"),
}
#: FFmpeg demuxers that read still images: such a "video" is one picture (use `brushwork stylize`).
_STILL_FORMATS = ("image2", "_pipe", "gif")


class VideoError(ImageError):
    """A video could not be read, decoded or written (an :class:`ImageError`, so callers that
    already handle unreadable pictures handle videos too)."""


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # the optional extra is missing
        raise ConfigError("video needs PyAV: pip install 'brushwork[video]'") from exc
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What the stylizer needs to know about an input video, read before any frame is stylized."""

    path: Path
    width: int  # upright size (display rotation applied)
    height: int
    fps: Fraction  # average frame rate
    time_base: Fraction
    frames: int | None  # from the container; None when it does not say
    duration: float | None  # seconds
    codec: str
    rotation: int  # degrees counter-clockwise the decoded pictures are turned to be upright
    audio_codecs: tuple[str, ...]

    @property
    def estimated_frames(self) -> int | None:
        if self.frames:
            return self.frames
        if self.duration and self.fps:
            return max(1, round(self.duration * float(self.fps)))
        return None


@dataclass
class Frame:
    """One decoded frame: index in decode order, presentation time, upright RGB pixels (or None when skipped)."""

    index: int
    pts: int
    rgb: np.ndarray | None


def _open_input(path: Path) -> Any:
    """An open input container, or a one-line :class:`VideoError`."""
    av = _av()
    if not path.exists():
        raise VideoError(f"video not found: {path}")
    if path.is_dir():
        raise VideoError(f"video is a folder, not a file: {path}")
    if path.stat().st_size == 0:
        raise VideoError(f"video is empty (0 bytes): {path}")
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise VideoError(f"video is corrupt or not a format FFmpeg can read ({_reason(exc)}): {path}") from exc
    fmt = container.format.name
    if any(tag in fmt for tag in _STILL_FORMATS):
        container.close()
        raise VideoError(f"{path} is a still image, not a video (use: brushwork stylize)")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise VideoError(f"no video stream in {path} (it holds: {', '.join(kinds)})")
    return container


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).split(":")[0].strip() or type(exc).__name__


def _rotation(frame: Any) -> int:
    """Display rotation of a decoded frame in degrees (phone videos), a multiple of 90."""
    try:
        rot = round(float(getattr(frame, "rotation", 0) or 0))
    except (TypeError, ValueError):
        return 0
    return rot % 360 if rot % 90 == 0 else 0


def probe_video(path: str | Path) -> VideoInfo:
    """Open ``path``, check it holds a decodable video stream, and describe it (decodes one frame)."""
    av = _av()
    path = Path(path).expanduser()
    container = _open_input(path)
    try:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as exc:
            raise VideoError(f"video is corrupt: its first frame cannot be decoded ({_reason(exc)}): {path}") from exc
        if first is None:
            raise VideoError(f"video has no frames that can be decoded: {path}")
        rotation = _rotation(first)
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        time_base = stream.time_base or Fraction(1, 90000)
        fps = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = None
        if stream.duration:
            duration = float(stream.duration * time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        if not fps:
            raise VideoError(f"video has no frame rate FFmpeg can tell: {path}")
        return VideoInfo(path=path, width=w, height=h, fps=Fraction(fps), time_base=Fraction(time_base),
                         frames=stream.frames or None, duration=duration, codec=stream.codec_context.name,
                         rotation=rotation, audio_codecs=tuple(s.codec_context.name for s in container.streams.audio))
    finally:
        container.close()


def frame_size(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """(width, height) of the stylized frames: longest side ``size`` (never enlarged), both even (yuv420p)."""
    w, h = fit_size((info.width, info.height), size)
    w, h = max(2, w - w % 2), max(2, h - h % 2)
    return w, h


def iter_frames(info: VideoInfo, size: tuple[int, int], skip: int = 0) -> Iterator[Frame]:
    """Decode every frame in presentation order, scaled to ``size`` (width, height), upright, RGB uint8.

    The first ``skip`` frames are yielded with ``rgb=None`` except the last of them (a resumed run
    needs the frame before the first new one for optical flow), which saves the colour conversion.
    Timestamps are kept; a missing or repeated one is replaced by the next tick so they only increase.
    """
    av = _av()
    container = _open_input(info.path)
    w, h = size
    sw, sh = (h, w) if info.rotation in (90, 270) else (w, h)
    last_pts: int | None = None
    step = max(1, round(1 / (float(info.fps) * float(info.time_base)))) if info.fps and info.time_base else 1
    index = 0
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        decoded = container.decode(stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except av.FFmpegError as exc:
                raise VideoError(f"video is corrupt at frame {index + 1} ({_reason(exc)}): {info.path}") from exc
            pts = frame.pts if frame.pts is not None else (last_pts + step if last_pts is not None else 0)
            if last_pts is not None and pts <= last_pts:
                pts = last_pts + 1
            last_pts = pts
            rgb = None
            if index >= skip - 1:
                rgb = frame.reformat(width=sw, height=sh, format="rgb24", interpolation="AREA").to_ndarray()
                if info.rotation:
                    rgb = np.ascontiguousarray(np.rot90(rgb, k=info.rotation // 90))
            yield Frame(index, int(pts), rgb)
            index += 1
    finally:
        container.close()


def _video_stream(out: Any, suffix: str, size: tuple[int, int], info: VideoInfo, crf: int) -> Any:
    av = _av()
    for name in VIDEO_CODECS[suffix]:
        if name not in av.codecs_available:
            continue
        stream = out.add_stream(name, rate=info.fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base  # frames keep their input timestamps (VFR safe)
        if name == "libx264":
            stream.options = {"crf": str(crf), "preset": "medium"}
        elif name.startswith("libvpx"):
            stream.options = {"crf": str(crf + 13), "b:v": "0", "row-mt": "1"}
        else:
            stream.bit_rate = max(1_000_000, size[0] * size[1] * 8)
        return stream
    raise VideoError(f"no {suffix} video encoder in this PyAV build (tried {', '.join(VIDEO_CODECS[suffix])})")


def _can_copy(format_name: str, template: Any) -> bool:
    """Whether the output container accepts ``template``'s packets as they are (a dry run in memory)."""
    av = _av()
    try:
        with av.open(io.BytesIO(), mode="w", format=format_name) as probe:
            probe.add_stream_from_template(template)
            probe.start_encoding()
        return True
    except (av.FFmpegError, ValueError, NotImplementedError):
        return False


def check_output(output: Path) -> None:
    """Refuse an output that cannot be written before any frame is stylized."""
    suffix = output.suffix.lower()
    if suffix not in VIDEO_CODECS:
        raise VideoError(f"cannot write '{output.name}': use one of {', '.join(sorted(VIDEO_CODECS))}")
    if output.is_dir():
        raise VideoError(f"output is a folder, not a file name: {output}")
    blocker = next((p for p in output.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise VideoError(f"cannot write {output}: {blocker} is a file, not a folder")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VideoError(f"cannot write {output}: {exc.strerror or exc}") from exc
    if not os.access(output.parent, os.W_OK):
        raise VideoError(f"cannot write {output}: folder {output.parent} is not writable")


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed over ``path`` when the block ends well and
    removed otherwise, so ``path`` is whole or untouched. Writer errors become one-line VideoErrors."""
    av = _av()
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except av.FFmpegError as exc:
        raise VideoError(f"cannot write {path}: {_reason(exc)}") from exc
    except OSError as exc:
        raise VideoError(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def encode_segment(frames: Iterable[tuple[int, np.ndarray]], path: str | Path, info: VideoInfo,
                   size: tuple[int, int], *, crf: int = 18, codec_for: str | None = None) -> int:
    """Encode RGB frames ``(pts, HxWx3 uint8)``, video only, into ``path``, with the codec an output
    named ``*codec_for`` (an extension, default ``path``'s own) gets; written under a temporary name
    and renamed, so ``path`` is whole or absent. Returns the first frame's pts: the segment itself
    starts at 0 (an MP4 stores a later start in milliseconds, which would shift it a little) and
    :func:`join_segments` adds it back.

    A long run is encoded a segment at a time as it goes (a few seconds each), so its work folder
    never holds more than one segment of lossless frames; :func:`join_segments` makes the video.
    """
    av = _av()
    path = Path(path)
    start: int | None = None
    with _replacing(path) as tmp, av.open(str(tmp), mode="w") as out:
        stream = _video_stream(out, (codec_for or path.suffix).lower(), size, info, crf)
        for pts, rgb in frames:
            start = pts if start is None else start
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = pts - start, info.time_base
            for p in stream.encode(frame):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    if start is None:
        raise VideoError(f"no frames to write to {path}")
    return start


def join_segments(segments: Sequence[tuple[str | Path, int]], output: str | Path, info: VideoInfo, *,
                  end_pts: int | None = None, audio: bool = True) -> str:
    """Remux the video packets of ``segments`` (``(file, start pts)`` from :func:`encode_segment`, in
    order, no re-encoding) and the input's audio into ``output``; returns what happened to the audio:
    ``"copied"``, ``"re-encoded (CODEC)"`` or ``"none"``.

    Audio packets are interleaved with the video by time and, when ``end_pts`` (input time base)
    is given, those starting after it are dropped (a ``--max-frames`` preview gets matching sound).
    The file is written under a temporary name and renamed at the end, so ``output`` is either
    complete or untouched.
    """
    av = _av()
    output = Path(output)
    if not segments:
        raise VideoError(f"no frames to write to {output}")
    check_output(output)
    src = _open_input(info.path) if audio and info.audio_codecs else None
    what = "none"
    try:
        with _replacing(output) as tmp:
            try:
                out = av.open(str(tmp), mode="w")
            except (av.FFmpegError, OSError) as exc:
                raise VideoError(f"cannot write {output}: {_reason(exc)}") from exc
            with out:
                with av.open(str(segments[0][0])) as first:
                    vstream = out.add_stream_from_template(first.streams.video[0])
                vstream.codec_context.framerate = info.fps  # the template only knows its time base (Matroska's
                vstream.time_base = info.time_base  # default duration would read 1/time base as the fps)
                audio_map: dict[int, tuple[Any, bool]] = {}
                if src is not None:
                    for s in src.streams.audio:
                        if _can_copy(out.format.name, s):
                            audio_map[s.index] = (out.add_stream_from_template(s), True)
                        else:
                            codec = "aac" if "aac" in out.supported_codecs else out.default_audio_codec
                            rate = s.codec_context.sample_rate or 48000
                            rates = av.Codec(codec, "w").audio_rates
                            if rates and rate not in rates:  # e.g. Opus: 48 kHz and a few lower rates only
                                rate = min(rates, key=lambda r: (r < rate, abs(r - rate)))
                            a = out.add_stream(codec, rate=rate)
                            a.layout = s.codec_context.layout.name if s.codec_context.layout else "stereo"
                            audio_map[s.index] = (a, False)
                            what = f"re-encoded ({codec})"
                    if what == "none":
                        what = "copied"
                out.start_encoding()  # the muxer settles its time bases here (Matroska: ms), before any packet
                end_time = float(end_pts * info.time_base) if end_pts is not None else None
                audio_packets = src.demux(*[src.streams[i] for i in audio_map]) if audio_map else iter(())
                pending: list[Any] = []  # audio packets read ahead of the video

                def mux_audio_until(t: float | None) -> None:
                    """Write the audio packets that start before ``t`` (None: all that are left)."""
                    while True:
                        if not pending:
                            pkt = next(audio_packets, None)
                            if pkt is None:
                                return
                            pending.append(pkt)
                        pkt = pending[0]
                        start = float(pkt.pts * pkt.time_base) if pkt.pts is not None and pkt.time_base else None
                        if t is not None and start is not None and start > t:
                            return
                        pending.pop(0)
                        if end_time is not None and start is not None and start >= end_time:
                            continue
                        _mux_audio_packet(out, pkt, audio_map)

                # Each segment starts with its encoder's reorder delay (DTS before PTS for B-frames); a short
                # last segment may have less. Give every segment the largest delay, so DTS neither jump
                # (the muxer would stretch a frame's duration) nor collide where two segments meet.
                delays = [_reorder_delay(seg) for seg, _ in segments]
                delay = max(delays)
                last_dts: Fraction | None = None
                for (seg, start), own_delay in zip(segments, delays):
                    with av.open(str(seg)) as c:
                        for p in c.demux(c.streams.video[0]):
                            if p.dts is None and p.pts is None:
                                continue  # the demuxer's end-of-stream flush packet
                            tb = p.time_base
                            shift = round(start * info.time_base / tb)
                            p.pts = None if p.pts is None else p.pts + shift
                            if p.dts is not None:
                                p.dts += shift - round((delay - own_delay) / tb)
                                if last_dts is not None and p.dts * tb <= last_dts:  # segments meet: keep DTS rising
                                    p.dts = min(int(last_dts / tb) + 1, p.pts if p.pts is not None else p.dts + 1)
                                last_dts = p.dts * tb
                            when = p.dts if p.dts is not None else p.pts
                            mux_audio_until(float(when * tb))
                            p.stream = vstream
                            out.mux(p)
                mux_audio_until(None)
                for stream, copied in audio_map.values():
                    if not copied:
                        for p in stream.encode(None):
                            out.mux(p)
    finally:
        if src is not None:
            src.close()
    return what


def _reorder_delay(segment: str | Path) -> Fraction:
    """How far (seconds) a segment's first DTS lies before its first PTS: its encoder's B-frame delay."""
    av = _av()
    with av.open(str(segment)) as c:
        for p in c.demux(c.streams.video[0]):
            if p.pts is not None and p.dts is not None:
                return max(Fraction(0), (p.pts - p.dts) * p.time_base)
    return Fraction(0)


def encode_video(frames: Iterable[tuple[int, np.ndarray]], output: str | Path, info: VideoInfo,
                 size: tuple[int, int], *, end_pts: int | None = None, audio: bool = True, crf: int = 18) -> str:
    """Encode RGB frames ``(pts, HxWx3 uint8)`` into ``output`` with the input's audio in one go
    (:func:`encode_segment` + :func:`join_segments`); returns what happened to the audio."""
    output = Path(output)
    check_output(output)
    seg = output.with_name(f".{output.stem}.video.mp4")
    try:
        start = encode_segment(frames, seg, info, size, crf=crf, codec_for=output.suffix)
        return join_segments([(seg, start)], output, info, end_pts=end_pts, audio=audio)
    finally:
        seg.unlink(missing_ok=True)


def _mux_audio_packet(out: Any, pkt: Any, audio_map: dict[int, tuple[Any, bool]]) -> None:
    if pkt.dts is None and pkt.size == 0:  # demuxer's end-of-stream flush packet
        return
    stream, copied = audio_map[pkt.stream.index]
    if copied:
        pkt.stream = stream
        out.mux(pkt)
        return
    for frame in pkt.decode():
        frame.pts = None  # the encoder re-times resampled audio
        for p in stream.encode(frame):
            out.mux(p)
