"""Gatys at 512 px: the previous default (300 L-BFGS steps at full size) against the coarse-to-fine
default (300 steps over 128 -> 256 -> 512, most of them small) and ``--init adain``, with pastiche's
300-step time measured in the same run, and the evaluator's scores on held-out pairs.

pastiche's time is its setup plus 300 times its median step (``--pastiche-steps`` measured steps; a
full 300-step pastiche run is ~10 minutes here and adds nothing to the per-step figure). brushwork's
times are whole ``optimize()`` calls (encoder, targets, every scale). ``--avx2`` repeats the timings
in a child process with torch capped to AVX2 (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``:
fp32 AVX2 kernels, no bf16), the closest this machine gets to an ordinary laptop's CPU.

    python benchmarks/bench_gatys_speed.py --avx2 --out benchmarks/results/gatys_speed.md \
        --sheet docs/gatys_speed_sheet.jpg
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, labelled_grid, table, write_report

from brushwork.inference.engine import cpu_kind

#: held-out pairs (none of these photos or paintings trained a shipped model)
PAIRS = [("content/golden_gate.jpg", "style/la_muse.jpg"), ("content/brad_pitt.jpg", "style/mosaic.jpg"),
         ("content/stata_center.jpg", "style/woman_with_hat.jpg")]
SIZE = 512
VARIANTS = {
    "previous default: 300 steps at 512": {"steps": 300, "pyramid": False},
    "default: 300 steps, 128->256->512": {"steps": 300},
    "default + --init adain": {"steps": 300, "init": "adain"},
}
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def run_brushwork(photo: Any, painting: Any, **overrides: Any) -> tuple[Any, float]:
    from brushwork.methods.optimize import OptimizeConfig, StyleSpec, optimize

    t0 = time.perf_counter()
    r = optimize(photo, [StyleSpec(image=painting)], OptimizeConfig(size=SIZE, **overrides))
    return r.image, time.perf_counter() - t0


def pastiche_300(photo_png: Path, painting_png: Path, steps: int) -> dict[str, float]:
    """pastiche's setup and median step at the photo's size; its 300-step estimate."""
    from pastiche.pastiche import PasticheArtist
    from PIL import Image

    t0 = time.perf_counter()
    w, h = Image.open(painting_png).size
    artist = PasticheArtist(str(photo_png), [str(painting_png)], device="cpu", size=None, size_pixels=None,
                            style_size=(h, w))
    setup = time.perf_counter() - t0
    stamps = [time.perf_counter()]
    for _ in range(steps):
        artist.draw()
        stamps.append(time.perf_counter())
    step = statistics.median(b - a for a, b in zip(stamps[1:], stamps[2:]))
    return {"setup s": round(setup, 1), "s/step": round(step, 3), "300 steps s (est.)": round(setup + 300 * step, 1)}


def _inputs(data: Path, content: str, style: str, tmp: Path) -> tuple[Any, Any, Path, Path]:
    from brushwork.image.io import fit_size, load_image, resize

    photo = load_image(data / content, what="photo")
    painting = load_image(data / style, what="style image")
    photo = resize(photo, fit_size(photo.size, SIZE, allow_upscale=True))
    painting = resize(painting, fit_size(painting.size, SIZE, allow_upscale=True))
    pp, sp = tmp / f"{Path(content).stem}.png", tmp / f"{Path(style).stem}.png"
    photo.save(pp)
    painting.save(sp)
    return photo, painting, pp, sp


def timings(data: Path, pastiche_steps: int, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """pastiche's 300-step estimate and each variant's time on the first pair (what the child reports)."""
    with tempfile.TemporaryDirectory() as t:
        photo, painting, pp, sp = _inputs(data, *PAIRS[0], Path(t))
        out: dict[str, Any] = {"pastiche": pastiche_300(pp, sp, pastiche_steps)}
        for name, kw in VARIANTS.items():
            if name not in skip:
                out[name] = round(run_brushwork(photo, painting, **kw)[1], 1)
    return out


def main(argv: list[str] | None = None) -> int:
    global SIZE
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--pairs", type=int, default=len(PAIRS))
    ap.add_argument("--pastiche-steps", type=int, default=8)
    ap.add_argument("--avx2", action="store_true", help="also time with torch capped to AVX2 (a child process)")
    ap.add_argument("--timings-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, default=SIZE, help="longest side (512 for the report; less for a smoke run)")
    ap.add_argument("--reuse", type=Path, help="a log of this script's JSON rows: rows already measured are kept")
    ap.add_argument("--avx2-skip-previous", action="store_true",
                    help="time only the new schedules with torch capped to AVX2 (the previous default is slow)")
    ap.add_argument("--skip-previous", action="store_true",
                    help="leave out the previous default (300 full-size steps: the slowest run) here as well")
    ap.add_argument("--sheet", type=Path)
    ap.add_argument("--sheet-only", action="store_true", help="only render --sheet (no timings or scores)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    SIZE = args.size
    if args.timings_child:
        skip = (next(iter(VARIANTS)),) if args.avx2_skip_previous else ()
        print(json.dumps(timings(args.data, args.pastiche_steps, skip)))
        return 0
    if args.sheet_only:
        if not args.sheet:
            ap.error("--sheet-only needs --sheet FILE")
        sheet(args.data, args.sheet)
        return 0
    import torch

    from brushwork.metrics import Evaluator

    kind = cpu_kind()
    rows, times = [], {}
    done = {}
    if args.reuse and args.reuse.is_file():
        for line in args.reuse.read_text().splitlines():
            with contextlib.suppress(ValueError):
                row = json.loads(line)
                if "pastiche" in row:
                    times["pastiche"] = row["pastiche"]
                elif "pair" in row:
                    done[row["pair"], row["run"]] = row
    with tempfile.TemporaryDirectory() as t:
        for content, style in PAIRS[: args.pairs]:
            photo, painting, pp, sp = _inputs(args.data, content, style, Path(t))
            ev = Evaluator(photo, painting, size=SIZE)
            if not times:
                times["pastiche"] = pastiche_300(pp, sp, args.pastiche_steps)
                print(json.dumps({"pastiche": times["pastiche"]}), file=sys.stderr, flush=True)
            for name, kw in VARIANTS.items():
                if args.skip_previous and name == next(iter(VARIANTS)):
                    continue
                key = (f"{Path(content).stem} + {Path(style).stem}", name)
                if key in done:
                    rows.append(done[key])
                    continue
                img, sec = run_brushwork(photo, painting, **kw)
                s = ev.score(img)
                rows.append({"pair": f"{Path(content).stem} + {Path(style).stem}", "run": name, "s": round(sec, 1),
                             "style": round(s.style_vs_photo, 4), "content": round(s.content, 3)})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    means = []
    p300 = times["pastiche"]["300 steps s (est.)"]
    for name in VARIANTS:
        sel = [r for r in rows if r["run"] == name]
        if not sel:
            continue
        sec = statistics.mean(r["s"] for r in sel)
        means.append({"run": name, "mean s": round(sec, 1), "vs pastiche 300 steps": round(sec / p300, 2),
                      "style": round(statistics.mean(r["style"] for r in sel), 4),
                      "content": round(statistics.mean(r["content"] for r in sel), 3)})
    parts = [f"# Gatys at {SIZE} px: coarse-to-fine default vs the previous default vs pastiche\n\n"
             f"CPU: {kind['cpu']}, capability {kind['capability']}, native bf16 "
             f"{'yes (brushwork runs bf16 autocast)' if kind['bf16'] else 'no'}, torch threads "
             f"{torch.get_num_threads()}. Scores: brushwork's evaluator at {SIZE} px (style = Gram distance "
             "relative to the untouched photo's, lower is more style; content = relu4_2 distance), on held-out "
             f"pairs. pastiche (fp32): setup {times['pastiche']['setup s']} s, {times['pastiche']['s/step']} "
             f"s/step, 300 steps ~{p300} s.\n\n", table(means), "\n", table(rows)]
    if args.avx2:
        env = {**os.environ, **AVX2}
        child = subprocess.run([sys.executable, __file__, "--timings-child", "--data", str(args.data), "--size",
                                str(SIZE), *(["--avx2-skip-previous"] if args.avx2_skip_previous else []),
                                "--pastiche-steps", str(args.pastiche_steps)], capture_output=True, text=True,
                               env=env, check=True)
        res = json.loads(child.stdout.strip().splitlines()[-1])
        p = res.pop("pastiche")
        avx2_rows = [{"run": name, "s": sec, "vs pastiche 300 steps": round(sec / p["300 steps s (est.)"], 2)}
                     for name, sec in res.items()]
        parts += [f"\n## Torch capped to AVX2 (fp32, no bf16), first pair\n\npastiche: {p['s/step']} s/step, "
                  f"300 steps ~{p['300 steps s (est.)']} s.\n\n", table(avx2_rows)]
    write_report("".join(parts), args.out)
    if args.sheet:
        sheet(args.data, args.sheet)
    return 0


def sheet(data: Path, out: Path) -> None:
    """The three variants side by side on the bundled portrait (matplotlib's Grace Hopper), the painting named."""
    from brushwork.demo import demo_photo

    painting = data / PAIRS[0][1]
    outs = [run_brushwork(demo_photo(), painting, **kw) for kw in VARIANTS.values()]
    short = [f"before: 300 @{SIZE}", f"now: {SIZE // 4}-{SIZE // 2}-{SIZE}", "now + init adain"]
    labelled_grid([(f"{Path(PAIRS[0][1]).stem}\n(not shown)", [img for img, _ in outs])],
                  [f"{name} {sec:.0f} s" for name, (_, sec) in zip(short, outs)], out, height=320)


if __name__ == "__main__":
    sys.exit(main())
