#!/usr/bin/env python
"""What a lighter ghiasi transformer layout would gain: INT8 pass time at 1024 px, on this CPU's onnxruntime
kernels and on AVX2 ones, before any training.

Each layout is built with random weights, exported and statically quantized exactly as the shipped model is
(7-bit weights, QDQ, the graph rewrites), then timed in fresh processes: the first pass (what a one-photo
command pays: its page faults included) and the best later pass. Which layout is worth distilling is then a
question of quality only (``brushwork train distill``, ``benchmarks/bench_distill.py``).

    python benchmarks/ort_avx2.py /tmp/ort_avx2
    PYTHONPATH=src python benchmarks/bench_ghiasi_layouts.py --ort-avx2 /tmp/ort_avx2 --out /tmp/layouts.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_report

from brushwork.inference.engine import cpu_kind

#: label: (widths, residual blocks, 1/2-resolution layers before the stride-2 one); the first is the shipped one
LAYOUTS = {
    "32,32,64 x5, stem 2 (shipped)": ((32, 32, 64), 5, 2),
    "32,32,64 x4, stem 2": ((32, 32, 64), 4, 2),
    "32,32,64 x3, stem 2": ((32, 32, 64), 3, 2),
    "32,32,64 x5, stem 1": ((32, 32, 64), 5, 1),
    "32,32,64 x3, stem 1": ((32, 32, 64), 3, 1),
    "32,32,48 x5, stem 2": ((32, 32, 48), 5, 2),
    "24,24,48 x5, stem 2": ((24, 24, 48), 5, 2),
    "24,24,64 x4, stem 2": ((24, 24, 64), 4, 2),
}

CHILD = """
import sys, time, numpy as np
from brushwork.inference.session import session
s = session(sys.argv[1], arena=True)
x = np.random.default_rng(0).random((1, 3, 1024, 1024), dtype=np.float32)
e = np.random.default_rng(1).standard_normal((1, 100)).astype(np.float32)
ts = []
for _ in range(3):
    t = time.perf_counter(); s.run(None, {"image": x, "embedding": e}); ts.append(time.perf_counter() - t)
print(ts[0], min(ts[1:]))
"""


def build(folder: Path, widths: tuple[int, ...], residual: int, stem: int, photos: list[Path]) -> Path:
    import torch

    from brushwork.export.onnx import export_ghiasi
    from brushwork.export.quantize import quantize
    from brushwork.methods.ghiasi import GhiasiConfig, GhiasiNet

    torch.manual_seed(0)
    GhiasiNet(GhiasiConfig(widths=widths, n_residual=residual, stem=stem, end_kernel=3,
                           subpixel=True)).save_pretrained(folder)
    main, _, _ = export_ghiasi(folder, folder / "g.onnx")
    return quantize(main, folder / "g.int8.onnx", photos=photos)


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    from PIL import Image

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ort-avx2", type=Path, metavar="DIR", required=True,
                    help="an onnxruntime copy capped to AVX2 kernels (benchmarks/ort_avx2.py DIR)")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per layout and kernel family")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    src = str(Path(__file__).resolve().parents[1] / "src")
    paths = {"this CPU's kernels": src, "AVX2 kernels": os.pathsep.join([str(args.ort_avx2.resolve()), src])}
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        rng = np.random.default_rng(0)
        photos = []
        for i in range(4):  # calibration: random weights make any picture as typical as another
            photos.append(tmp / f"p{i}.png")
            Image.fromarray((rng.random((256, 256, 3)) * 255).astype(np.uint8)).save(photos[-1])
        files = {label: build(tmp / f"l{i}", *spec, photos) for i, (label, spec) in enumerate(LAYOUTS.items())}
        for _ in range(args.rounds):  # interleaved: the machine's drift spreads over every layout alike
            for label, f in files.items():
                for kernels, path in paths.items():
                    done = subprocess.run([sys.executable, "-c", CHILD, str(f)], capture_output=True, text=True,
                                          env={**os.environ, "PYTHONPATH": path}, check=True)
                    first, best = (float(v) for v in done.stdout.split())
                    times.setdefault((label, kernels), []).append((first, best))
    base = {k: statistics.median(b for _, b in times[(next(iter(LAYOUTS)), k)]) for k in paths}
    rows = []
    for label in LAYOUTS:
        row: dict[str, object] = {"layout (widths x residual blocks)": label}
        for k in paths:
            firsts, bests = zip(*times[(label, k)])
            row[f"{k}: first pass s"] = round(statistics.median(firsts), 3)
            row[f"{k}: later pass s"] = round(statistics.median(bests), 3)
            row[f"{k}: vs shipped"] = round(statistics.median(bests) / base[k], 2)
        rows.append(row)
    kind = cpu_kind()
    text = ("# Lighter ghiasi transformer layouts: INT8 pass at 1024x1024\n\n"
            f"CPU: {kind['cpu']}, capability {kind['capability']}, native bf16 {'yes' if kind['bf16'] else 'no'}, "
            f"{kind['cores']} cores; median of {args.rounds} fresh processes per cell, random weights, exported and "
            "quantized as the shipped model; 'AVX2 kernels' is onnxruntime capped by benchmarks/ort_avx2.py.\n\n"
            + table(rows))
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
