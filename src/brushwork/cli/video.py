"""``brushwork video``: the CLI face of :mod:`brushwork.video` (progress bars and reports only)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from brushwork.cli.options import DEFAULT_MAX_SIZE, add_stylizer_options, count, number, stylize_options

#: brushwork.video.DEFAULT_TEMPORAL_WEIGHT, spelled out so building the parser imports no torch/av (a test keeps
#: them equal).
DEFAULT_TEMPORAL_WEIGHT = 0.7


def add_parser(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    v = sub.add_parser("video", help="stylize a video, temporally consistent (resumable: run the same command "
                                     "again to continue)")
    v.add_argument("input", metavar="VIDEO", help="input video (anything FFmpeg reads: mp4, mov, mkv, webm, ...)")
    v.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output video (.mp4/.mov/.m4v/.mkv: H.264; .webm: VP9); audio is copied")
    add_stylizer_options(v, "frames", ("luminance",))
    v.add_argument("--temporal-weight", type=number, default=DEFAULT_TEMPORAL_WEIGHT, metavar="W",
                   help="share of the previous output frame (warped by optical flow) blended into each new one "
                        f"where the flow is reliable, 0..1 (default {DEFAULT_TEMPORAL_WEIGHT}); higher = steadier, "
                        "lower = crisper")
    v.add_argument("--no-temporal", action="store_true", help="stylize each frame on its own (flickers)")
    v.add_argument("--soft-blend", action="store_true",
                   help="skip restoring the local contrast the temporal blend averages away (softer strokes, "
                        "slightly steadier)")
    v.add_argument("--max-frames", type=count, default=None, metavar="N", help="stop after N frames (a preview)")
    v.add_argument("--crf", type=int, default=18, help="encoder quality, lower = better (default 18)")
    v.add_argument("--restart", action="store_true",
                   help="discard the frames of an earlier interrupted run instead of continuing it")
    v.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    v.add_argument("--no-watermark", action="store_true",
                   help="do not embed the invisible 'made with brushwork' watermark in the frames")


class _Bars:
    """tqdm bars (stylize, then encode) opened at the first report, so input errors come before any bar."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None
        self.stage: str | None = None

    def __call__(self, p: Any) -> None:
        from tqdm import tqdm

        if p.stage != self.stage:
            self.close()
            self.stage = p.stage
            self.bar = tqdm(total=p.total, initial=p.done - 1, desc=p.stage, unit="frame", disable=self.quiet,
                            file=sys.stderr, dynamic_ncols=True)  # resumed frames do not count towards the ETA
        self.bar.update(p.done - self.bar.n)
        if p.flicker is not None and p.stage == "stylize":
            self.bar.set_postfix(flicker=f"{p.flicker:.2f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.pipeline import ImageStylizer
    from brushwork.video import FLICKER_METRIC, probe_video, stylize_video, work_dir_for
    from brushwork.video.io import check_output, frame_size

    if not args.model and not args.style:
        raise ConfigError("give a trained --model or a painting/preset with -s (see `brushwork styles`)")
    if args.model and args.decoder:
        raise ConfigError("--decoder is for AdaIN (-s without --model)")
    if args.no_temporal and (args.temporal_weight != DEFAULT_TEMPORAL_WEIGHT or args.soft_blend):
        raise ConfigError("--temporal-weight/--soft-blend and --no-temporal contradict each other")
    if not 0 <= args.temporal_weight <= 1:
        raise ConfigError(f"--temporal-weight must be between 0 and 1, got {args.temporal_weight}")
    info = probe_video(args.input)  # bad input and output fail before the model loads
    check_output(Path(args.output).expanduser())
    size = args.size
    if size is None and max(info.width, info.height) > DEFAULT_MAX_SIZE:
        size = DEFAULT_MAX_SIZE
    options = stylize_options(args, size)
    stylizer = ImageStylizer(options)
    bars = _Bars(args.quiet or args.json)
    try:
        result = stylize_video(args.input, args.output, stylizer, size=size, temporal=not args.no_temporal,
                               temporal_weight=args.temporal_weight, restore=not args.soft_blend,
                               max_frames=args.max_frames, progress=bars,
                               restart=args.restart, crf=args.crf, watermark=not args.no_watermark)
    except KeyboardInterrupt:
        bars.close()
        work = work_dir_for(args.output)
        if work.is_dir():
            print(f"brushwork: stylized frames kept in {work}: run the same command again to continue",
                  file=sys.stderr)
        raise
    finally:
        bars.close()
    for note in result.notes:
        print(f"brushwork: note: {note}", file=sys.stderr)
    consistency = (f"optical-flow blend, weight {result.temporal_weight:g}"
                   + ("" if args.soft_blend else ", detail restored") if result.temporal else "frame by frame")
    w, h = frame_size(info, size)
    if args.json:
        print(json.dumps({
            "input": str(args.input), "output": str(result.output), "method": stylizer.method,
            "styles": stylizer.describe()["styles"], "frames": result.frames, "fps": round(result.fps, 3),
            "size": [w, h], "seconds": round(result.seconds, 3),
            "seconds_per_frame": round(result.seconds_per_frame, 4), "resumed_frames": result.resumed_frames,
            "audio": result.audio, "variable_frame_rate": result.variable_frame_rate,
            "flicker": {"warp_error": _round(result.flicker), "input_warp_error": _round(result.input_flicker),
                        "consistency": consistency, "metric": FLICKER_METRIC},
            "notes": result.notes}))
    elif not args.quiet:
        flicker = "n/a" if result.flicker is None else f"{result.flicker:.2f}"
        resumed = f", {result.resumed_frames} resumed" if result.resumed_frames else ""
        print(f"{args.input} -> {result.output} ({result.frames} frames{resumed}, {result.fps:g} fps, {w}x{h}, "
              f"{result.seconds:.1f} s, {result.seconds_per_frame:.2f} s/frame; flicker {flicker} "
              f"({consistency}); audio {result.audio})", file=sys.stderr)
    return 0


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)
