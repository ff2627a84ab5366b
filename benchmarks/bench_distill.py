#!/usr/bin/env python
"""A distilled net next to its teacher: speed at 512 and 1024 px, how closely it copies the teacher, and
both nets' evaluator scores, plus an optional side-by-side sheet.

Usage (from the repository root; ~3 CPU-minutes)::

    PYTHONPATH=src python benchmarks/bench_distill.py --teacher runs/teacher/model --student cin \\
        --out benchmarks/results/distill.md --sheet docs/distill_sheet.jpg

Speed: each net in a fresh process (its peak RSS is its own), torch with the default precision, one
warm-up then the median of ``--repeats`` end-to-end stylizations of a square photo. Fidelity: per
style, the student's output against the teacher's on the test photos at 512 px: mean absolute
difference in 8-bit levels and PSNR. Quality: the evaluator (:mod:`brushwork.metrics`, 512 px) on each
style's painting, over the same photos (lower style_vs_photo = more painting, lower content = more photo).
A ghiasi teacher (a folder whose config says so) is compared on eight paintings held out of its training,
both nets with ``--palette 0`` (what the nets paint, before the colour finish)::

    PYTHONPATH=src python benchmarks/bench_distill.py --teacher runs/ghiasi_teacher --student ghiasi_folder \\
        --out benchmarks/results/distill_ghiasi.md --sheet docs/distill_ghiasi_sheet.jpg
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, labelled_grid, peak_rss_gib, run_child, table, write_report

PHOTOS = ("content/golden_gate.jpg", "content/brad_pitt.jpg", "content/stata_center.jpg")
#: a ghiasi teacher's styles: paintings held out of its training (its MODEL.json's --exclude-style globs)
GHIASI_PAINTINGS = ("la_muse", "candy", "woman_with_hat", "mosaic", "feathers", "rain_princess",
                    "picasso_self_portrait_1907", "seated_nude")


def is_ghiasi(model: str) -> bool:
    config = Path(model) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("kind") == "ghiasi"


def painter(model: str, data: Path) -> tuple[Any, list[str], Any]:
    """``(stylize(photo, style, size) -> image, style names, painting path of a style)`` for a model:
    a feed-forward net's own styles, or a ghiasi net (torch, ``--palette 0``: the net alone) on held-out
    paintings."""
    if is_ghiasi(model):
        from brushwork.methods.ghiasi import GhiasiStylizer

        net = GhiasiStylizer(model)

        def paint(photo: Any, name: str, size: int) -> Any:
            return net.stylize(photo, [str(data / f"style/{name}.jpg")], size=size, palette=0.0).image

        return paint, list(GHIASI_PAINTINGS), lambda name: data / f"style/{name}.jpg"
    from brushwork.pipeline import feedforward_stylizer

    ff = feedforward_stylizer(model)[0]
    return (lambda photo, name, size: ff.stylize(photo, name, size=size).image), list(ff.style_names), \
        lambda name: data / f"style/{name}.jpg"


def speed_child(spec: dict[str, Any]) -> None:
    """One net in a fresh process: median seconds at 512 and 1024 px, then peak RSS."""
    import torch

    torch.set_num_threads(spec["threads"])
    paint, names, _ = painter(spec["model"], Path(spec["data"]))
    out: dict[str, Any] = {}
    for size in (512, 1024):
        photo = spec["photos"][str(size)]
        paint(photo, names[0], size)
        times = []
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            paint(photo, names[0], size)
            times.append(time.perf_counter() - t0)
        out[f"s@{size}"] = round(statistics.median(times), 3)
    out["peak_rss_gib"] = peak_rss_gib()
    print(json.dumps(out))


def compare(data: Path, teacher: str, student: str) -> list[dict[str, Any]]:
    """Per style: the student's distance from the teacher and both nets' evaluator scores."""
    import numpy as np

    from brushwork.metrics import Evaluator

    (t_paint, names, painting_of), (s_paint, _, _) = painter(teacher, data), painter(student, data)
    rows = []
    for name in names:
        diffs, psnrs, scores = [], [], {"teacher": [], "student": []}
        painting = painting_of(name)
        for photo in PHOTOS:
            a = t_paint(data / photo, name, 512)
            b = s_paint(data / photo, name, 512)
            fa, fb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
            diffs.append(float(np.abs(fa - fb).mean()))
            psnrs.append(10 * math.log10(255**2 / max(float(((fa - fb) ** 2).mean()), 1e-9)))
            if painting.is_file():
                ev = Evaluator(data / photo, painting, size=512)
                scores["teacher"].append(ev.score(a).as_dict())
                scores["student"].append(ev.score(b).as_dict())
        row: dict[str, Any] = {"style": name, "mean abs diff (of 255)": round(statistics.mean(diffs), 2),
                               "PSNR dB": round(statistics.mean(psnrs), 1)}
        for who, s in scores.items():
            if s:
                row[f"{who} style"] = round(statistics.mean(x["style_vs_photo"] for x in s), 3)
                row[f"{who} content"] = round(statistics.mean(x["content"] for x in s), 3)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def sheet(teacher: str, student: str, data: Path, out: Path, height: int = 192) -> None:
    """Teacher row over student row, one column per style (named, not shown), on the bundled portrait."""
    from brushwork.demo import demo_photo

    photo = demo_photo()
    nets = [("teacher", painter(teacher, data)), ("student", painter(student, data))]
    names = nets[0][1][1]
    labelled_grid([(label, [paint(photo, n, 384) for n in names]) for label, (paint, _, _) in nets], names,
                  out, height, label_w=70)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", help="model name or folder (required)")
    ap.add_argument("--student", help="model name or folder (required)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    ap.add_argument("--sheet", type=Path, default=None, help="also write a teacher/student sheet (JPEG)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        speed_child(json.loads(args.child))
        return 0
    if not (args.teacher and args.student):
        ap.error("--teacher and --student are required")
    import torch
    from PIL import Image, ImageOps

    parts = [f"brushwork distillation benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} "
             f"cores, torch {torch.__version__}, {args.threads} threads; teacher {args.teacher}, "
             f"student {args.student}\n"]
    with tempfile.TemporaryDirectory() as tmp_name:
        photos = {}
        for size in (512, 1024):
            path = Path(tmp_name) / f"square_{size}.png"
            ImageOps.fit(Image.open(args.data / "content/tubingen.jpg").convert("RGB"), (size, size),
                         Image.Resampling.LANCZOS).save(path)
            photos[str(size)] = str(path)
        speed = []
        for label, model in (("teacher", args.teacher), ("student", args.student)):
            spec = {"model": model, "photos": photos, "repeats": args.repeats, "threads": args.threads,
                    "data": str(args.data)}
            speed.append({"net": label, "model": model, **run_child(__file__, ["--child", json.dumps(spec)])})
            print(json.dumps(speed[-1]), file=sys.stderr)
    what = " (ghiasi nets with --palette 0, the net alone, on paintings held out of training)" \
        if is_ghiasi(args.teacher) else ""
    parts.append(f"## Speed (torch, default precision, end to end on a square photo){what}\n\n" + table(speed))
    rows = compare(args.data, args.teacher, args.student)
    mean = {k: round(statistics.mean(r[k] for r in rows), 3) for k in rows[0] if k != "style"}
    parts.append("## Per style at 512 px: student vs teacher, and both nets' evaluator scores\n\n"
                 + table([*rows, {"style": "mean", **mean}]))
    if args.sheet:
        sheet(args.teacher, args.student, args.data, args.sheet)
    write_report("\n".join(parts), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
