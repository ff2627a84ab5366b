"""Gram, mean/std and MMD (gaussian, linear, poly kernels) style losses side by side, in the optimize method.

Each pair (the bundled Grace Hopper photo and a painting held out of the ghiasi training, see
bench_ghiasi.py) is optimized with every loss under the same settings (L-BFGS from the photo, default
weights, ``--steps`` steps at ``--size`` px), then scored by the one evaluator (brushwork.metrics: Gram
style distance relative to the photo's, relu4_2 content distance, Lab palette distance to the painting,
clipped fraction), with the median seconds per step. The outputs make a labelled sheet for docs/ (the
paintings are named, not shown).

    PYTHONPATH=src python benchmarks/bench_style_losses.py --size 192 --steps 60 \
        --out benchmarks/results/style_losses.md --sheet docs/style_losses_sheet.jpg
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ghiasi import cpu_kind
from common import DEFAULT_DATA, labelled_grid, table, write_report

PAINTINGS = ["style/la_muse.jpg", "style/candy.jpg", "style/woman_with_hat.jpg"]
LOSSES = "gram,meanstd,mmd:gaussian,mmd:linear,mmd:poly"


def parse_losses(text: str) -> list[tuple[str, str, float | None]]:
    """``loss[:kernel[:style weight]]`` items, comma-separated."""
    out = []
    for item in text.split(","):
        parts = item.split(":")
        out.append((parts[0], parts[1] if len(parts) > 1 else "gaussian", float(parts[2]) if len(parts) > 2 else None))
    return out


def label(loss: str, kernel: str, weight: float | None = None) -> str:
    name = f"mmd {kernel}" if loss == "mmd" else loss
    return name if weight is None else f"{name}, style weight {weight:g}"


def run(photo: Path, painting: Path, loss: str, kernel: str, weight: float | None, size: int,
        steps: int) -> tuple[Any, float]:
    from brushwork.methods.optimize import optimize

    stamps: list[float] = []
    extra = {} if weight is None else {"style_weight": weight}
    r = optimize(photo, [painting], size=size, steps=steps, style_loss=loss, style_kernel=kernel,
                 callback=lambda info: stamps.append(time.perf_counter()), **extra)
    return r.image, float(np.median(np.diff(stamps))) if len(stamps) > 2 else r.seconds / max(1, steps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--losses", default=LOSSES, help="loss[:kernel[:style weight]], comma-separated")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--sheet", type=Path, default=None)
    ap.add_argument("--log", type=Path, default=None, help="JSON lines, one per run (kept if the run is cut short)")
    args = ap.parse_args(argv)
    losses = parse_losses(args.losses)
    import torch

    from brushwork.demo import demo_photo
    from brushwork.image.io import load_image
    from brushwork.metrics import Evaluator

    if args.threads:
        torch.set_num_threads(args.threads)
    photo = demo_photo()
    rows, tiles = [], []
    load0 = os.getloadavg()[0]
    for rel in PAINTINGS:
        painting = args.data / rel
        ev = Evaluator(photo, painting, size=args.size)
        row_tiles = [load_image(photo).resize((round(args.size * 512 / 600), args.size))]
        for loss, kernel, weight in losses:
            img, per_step = run(photo, painting, loss, kernel, weight, args.size, args.steps)
            s = ev.score(img)
            rows.append({"painting": Path(rel).stem, "loss": label(loss, kernel, weight),
                         "style": round(s.style_vs_photo, 3),
                         "content": round(s.content, 3), "palette": round(s.palette, 2),
                         "clipped %": round(100 * s.clipped, 2), "s/step": round(per_step, 2)})
            row_tiles.append(img)
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if args.log:
                with args.log.open("a") as f:
                    f.write(json.dumps(rows[-1]) + "\n")
        tiles.append((Path(rel).stem.replace("_", " "), row_tiles))
    means = []
    for loss, kernel, weight in losses:
        sel = [r for r in rows if r["loss"] == label(loss, kernel, weight)]
        means.append({"loss": label(loss, kernel, weight), **{k: round(float(np.mean([r[k] for r in sel])), 3)
                                                    for k in ("style", "content", "palette", "clipped %", "s/step")}})
    kind = cpu_kind()
    text = "\n".join([
        "# Style losses in the optimize method: gram, meanstd, mmd (gaussian, linear, poly)",
        "",
        f"`PYTHONPATH=src python benchmarks/bench_style_losses.py --size {args.size} --steps {args.steps} "
        f"--losses {args.losses}` on "
        f"{kind['cpu']} (capability {kind['capability']}, bf16 {'yes' if kind['bf16'] else 'no'}, "
        f"{kind['threads']} torch threads; the 2 cores were shared with other jobs, load average "
        f"{load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, so s/step is slower than on an idle "
        "machine and only comparable within this table).",
        "",
        f"The bundled Grace Hopper photo with {len(PAINTINGS)} held-out paintings, {args.steps} L-BFGS steps at "
        f"{args.size} px from the photo, default weights (content 1, style 5 unless named, tv 1). Evaluator at "
        f"{args.size} px: "
        "style = Gram distance to the painting / the photo's (lower = more painting; a Gram measure, so it "
        "favours the gram loss), content = relu4_2 distance to the photo (lower = more photo kept), palette = Lab "
        "sliced Wasserstein to the painting's colours.",
        "",
        "## Means",
        "",
        table(means),
        "## Per painting",
        "",
        table(rows),
    ])
    write_report(text, args.out)
    if args.sheet:
        labelled_grid(tiles, ["photo", *[label(*x) for x in losses]], args.sheet, height=args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
