"""Gatys at 4096 px (issue 15): the whole ``brushwork stylize --method optimize --size 4096`` command in a
subprocess, its peak RSS, wall time and tile count. Coarse-to-fine runs 1024 and 2048 px whole and the
4096 px scale tile by tile (automatic above 2048 px), so VGG never sees the full size.

Rows: ``default`` (the coarse-to-fine schedule, ``--steps`` in all: the 4096 scale's share of them runs on
every tile) and ``tiles only`` (``--no-pyramid --steps 1``: one step per tile at 4096 px, nothing whole),
which isolates the tiled scale's own peak (what ``estimate_tiled_memory`` prices). ``--docs-crop`` adds a
run on matplotlib's sample photo (Grace Hopper) and saves a crop across a tile corner of its output as a
small JPEG (committable: no image of the data folder in it); ``--crops DIR`` saves PNG crops across a tile
corner of every output for looking at (never commit those: they show the data folder's photo).

    python benchmarks/bench_gatys_tiled.py --out benchmarks/results/gatys_tiled.md --crops /tmp/crops \
        --docs-crop docs/gatys_tiled_corner.jpg
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, REPO, table, write_report

#: runs ``argv`` and reports its peak RSS: ``RUSAGE_CHILDREN`` of a fresh wrapper is that one command's
_WRAP = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
         "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
         "sys.exit(rc)")
TILES = re.compile(r"(\d+)x(\d+) optimized in (\d+) tiles of up to (\d+) px")
ESTIMATE = re.compile(r"estimated peak memory ([\d.]+) GiB")


def cpu_info(threads: int | None) -> dict[str, Any]:
    """The CPU a row ran on, as torch sees it (in this process; the child runs the same torch)."""
    import torch

    from brushwork.inference.engine import cpu_kind

    if threads:
        torch.set_num_threads(threads)
    return {**cpu_kind(), "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "mkldnn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def brushwork_cli() -> list[str]:
    exe = Path(sys.executable).with_name("brushwork")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from brushwork.cli.main import main; main()"]


def run_row(photo: Path, style: Path, out: Path, size: int, steps: int, extra: list[str],
            threads: int | None) -> dict[str, Any]:
    """One whole CLI command in a fresh process: its JSON report plus wall time and peak RSS."""
    cmd = [*brushwork_cli(), "stylize", str(photo), "-s", str(style), "--method", "optimize", "--size", str(size),
           "--upscale", "--steps", str(steps), "-o", str(out), "--json", "-q", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench_gatys_tiled: {' '.join(cmd)} failed: {proc.stderr.strip()[-2000:]}")
    peak_kb = int(re.findall(r"PEAK_RSS_KB (\d+)", proc.stderr)[-1])
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    notes = " ".join(report.get("notes", []))
    tiles = {(int(w), int(h)): (int(n), int(t)) for w, h, n, t in TILES.findall(notes)}
    est = ESTIMATE.search(notes)
    return {"report": report, "wall_s": wall, "peak_gib": peak_kb / 2**20, "tiles": tiles,
            "estimate_gib": float(est.group(1)) if est else None, "cmd": cmd}


def corner_crop(path: Path, tile: int, side: int = 512):
    """A ``side`` px crop of ``path`` centred where the first tile's box ends in both directions: across
    two cross-fades and the corner four tiles share."""
    from PIL import Image

    from brushwork.methods.optimize import tile_grid

    img = Image.open(path).convert("RGB")
    grid = tile_grid(img.width, img.height, tile)
    cx = (grid.columns[0][1] + grid.columns[1][0]) // 2 if len(grid.columns) > 1 else img.width // 2
    cy = (grid.rows[0][1] + grid.rows[1][0]) // 2 if len(grid.rows) > 1 else img.height // 2
    x0 = min(max(0, cx - side // 2), img.width - side)
    y0 = min(max(0, cy - side // 2), img.height - side)
    return img.crop((x0, y0, x0 + side, y0 + side)), (x0, y0), (cx, cy)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--photo", default="content/tubingen.jpg")
    ap.add_argument("--style", default="style/starry_night.jpg")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10, help="total steps of the default row (default 10)")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the runs (default: torch's)")
    ap.add_argument("--rows", default="default,tiles only")
    ap.add_argument("--crops", type=Path, default=None, help="save PNG crops across a tile corner here")
    ap.add_argument("--docs-crop", type=Path, default=None,
                    help="also run the sample photo and save a JPEG crop across a tile corner of it here")
    ap.add_argument("--docs-size", type=int, default=2560)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)

    from brushwork.methods.optimize import AUTO_TILE, TILE_ABOVE, pyramid_sizes, split_steps, tile_pad

    photo, style = args.data / args.photo, args.data / args.style
    for p in (photo, style):
        if not p.is_file():
            raise SystemExit(f"bench_gatys_tiled: {p} not found (see ../shared/data/README.md)")
    cpu = cpu_info(args.threads)
    rows, details = [], []
    plans = {"default": (args.steps, []), "tiles only": (1, ["--no-pyramid"])}
    tmp = Path(tempfile.mkdtemp(prefix="bench_gatys_tiled_"))
    for name in [r.strip() for r in args.rows.split(",") if r.strip()]:
        steps, extra = plans[name]
        out = tmp / f"{name.replace(' ', '_')}.jpg"
        r = run_row(photo, style, out, args.size, steps, extra, args.threads)
        size = tuple(r["report"]["size"])
        n_tiles, tile = r["tiles"].get(size, (0, 0))
        sizes = pyramid_sizes(args.size, not extra)
        per_scale = split_steps(steps, len(sizes))
        schedule = " -> ".join(f"{s}: {n}" + (f"/tile x {n_tiles}" if s == sizes[-1] and n_tiles else "")
                               for s, n in zip(sizes, per_scale))
        rows.append({"run": name, "output": f"{size[0]}x{size[1]}", "steps per scale": schedule,
                     "optimizer steps": r["report"]["steps"], "tiles": n_tiles, "tile px": tile,
                     "wall s": round(r["wall_s"], 1), "peak RSS GiB": round(r["peak_gib"], 2),
                     "estimate GiB": r["estimate_gib"]})
        shown = ["brushwork", *r["cmd"][r["cmd"].index("stylize"):]]
        shown = [args.photo if c == str(photo) else args.style if c == str(style) else
                 "out.jpg" if c == str(out) else c for c in shown]
        details.append(" ".join(shown))
        if args.crops and tile:
            args.crops.mkdir(parents=True, exist_ok=True)
            crop, at, corner = corner_crop(out, tile)
            crop.save(args.crops / f"{out.stem}_corner_{corner[0]}_{corner[1]}.png")
        print(json.dumps(rows[-1]), file=sys.stderr)

    docs_line = ""
    if args.docs_crop:
        from brushwork.demo import demo_photo

        out = tmp / "grace_hopper.jpg"
        r = run_row(demo_photo(), style, out, args.docs_size, args.steps, [], args.threads)
        size = tuple(r["report"]["size"])
        n_tiles, tile = r["tiles"].get(size, (0, 0))
        crop, at, corner = corner_crop(out, tile or AUTO_TILE, side=384)
        args.docs_crop.parent.mkdir(parents=True, exist_ok=True)
        crop.save(args.docs_crop, quality=85)
        docs_line = (f"\n`{args.docs_crop}`: a 384 px crop (at {at[0]},{at[1]}, centred on the corner four tiles "
                     f"share, {corner[0]},{corner[1]}) of matplotlib's Grace Hopper photo at {size[0]}x{size[1]} "
                     f"({n_tiles} tiles of up to {tile} px, {args.steps} steps, {r['wall_s']:.0f} s, peak RSS "
                     f"{r['peak_gib']:.2f} GiB) in the style of {Path(args.style).stem.replace('_', ' ').title()} "
                     f"(the painting is not shown).\n")

    text = (f"# Gatys at {args.size} px, the last scale in tiles (issue 15)\n\n"
            f"CPU: {cpu['cpu']}, capability {cpu['capability']} (torch: {cpu['torch_capability']}), native bf16 "
            f"{'yes' if cpu['bf16'] else 'no'} (mkldnn bf16 supported: {cpu['mkldnn_bf16']}), {cpu['cores']} cores "
            f"shared with other jobs, torch {cpu['torch']} with {cpu['threads']} threads. Photo "
            f"`{args.photo}`, painting `{args.style}` (both from the data folder), `--upscale` to {args.size} px. "
            f"Each row is one whole CLI command in a fresh process (peak RSS of that process; wall time includes "
            f"start-up, loading and writing the JPEG). Scales above {TILE_ABOVE} px run in tiles of up to "
            f"{AUTO_TILE} px with {tile_pad(AUTO_TILE)} px of frozen context, each tile getting the scale's share of "
            f"the steps (the steps column: steps per scale, coarse to fine). The step budget is tiny so the "
            f"run finishes on two shared cores; quality needs more: the time grows with the steps, the peak "
            f"memory only as L-BFGS's history fills (the estimate prices it full).\n\n"
            + table(rows) + "\nCommands:\n\n" + "".join(f"- `{d}`\n" for d in details) + docs_line)
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
