"""The shipped INT8 exports against their fp32 nets, on this CPU's onnxruntime kernels and on AVX2 ones.

onnxruntime's uint8 x int8 convolution kernels differ by CPU: with VNNI (AVX-512 VNNI, AVX-VNNI) the
products are summed in int32, on plain AVX2 (most users' CPUs) pairs of them are summed in int16 and
saturate. So an INT8 file can give one picture on the machine it was measured on and another on a
user's. Each row runs whole ``brushwork stylize --engine int8`` commands (what users run; painting
cache off, so a ghiasi painting goes through the INT8 statistics encoder) on held-out photos and
compares them with the same command on ``--engine torch`` (fp32): PSNR and mean |difference|.

The AVX2 column needs an onnxruntime copy capped to AVX2 kernels (``benchmarks/ort_avx2.py DIR``);
``--compare-src LABEL=DIR`` adds rows for an earlier source tree (e.g. before a re-quantization).

    python benchmarks/ort_avx2.py /tmp/ort_avx2
    python benchmarks/bench_int8_isa.py --ort-avx2 /tmp/ort_avx2 --out benchmarks/results/int8_isa.md
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, table, write_report

from brushwork.inference.engine import cpu_kind

PHOTOS = ("brad_pitt", "chicago", "tubingen")  # held out of every shipped model's training photos
CASES = {  # label: arguments; the paintings are held out of ghiasi's training
    "cin starry_night": ["--model", "starry_night"],
    "cin udnie": ["--model", "udnie"],
    "ghiasi candy": ["-s", "{style}/candy.jpg", "--method", "ghiasi"],
    "ghiasi the_scream": ["-s", "{style}/the_scream.jpg", "--method", "ghiasi"],
    "cyclegan monet": ["--model", "monet"],
}


def _run(args: list[str], out: Path, env: dict[str, str]) -> np.ndarray:
    from PIL import Image

    cmd = [sys.executable, "-m", "brushwork", "stylize", *args, "-o", str(out), "-q", "--no-watermark",
           "--no-metadata", "--size", "512"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-600:]}")
    return np.asarray(Image.open(out).convert("RGB"), dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--ort-avx2", type=Path, metavar="DIR", required=True,
                    help="an onnxruntime copy capped to AVX2 kernels (benchmarks/ort_avx2.py DIR)")
    ap.add_argument("--compare-src", action="append", default=[], metavar="LABEL=DIR",
                    help="also run an earlier source tree (DIR holds brushwork/ and its models)")
    ap.add_argument("--case", action="append", choices=list(CASES), help="only these rows (repeatable)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    trees = {"this tree": None, **{c.split("=", 1)[0]: Path(c.split("=", 1)[1]).resolve() for c in args.compare_src}}
    paths = {"this CPU's kernels": None, "AVX2 kernels": args.ort_avx2.resolve()}
    kind = cpu_kind()
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        base = {"BRUSHWORK_HOME": str(tmp / "home"), "BRUSHWORK_NO_PAINTING_CACHE": "1"}
        for case, template in CASES.items():
            if args.case and case not in args.case:
                continue
            argv_case = [a.format(style=args.data / "style") for a in template]
            photos = [args.data / "content" / f"{p}.jpg" for p in PHOTOS]
            refs = [_run([str(p), *argv_case, "--engine", "torch", "--precision", "fp32"],
                         tmp / "ref.png", base) for p in photos]
            for tree_label, tree in trees.items():
                row = {"model, style": case, "source": tree_label}
                for path_label, ort_dir in paths.items():
                    parts = [str(d) for d in (tree, ort_dir) if d is not None]
                    env = {**base, **({"PYTHONPATH": os.pathsep.join(parts)} if parts else {})}
                    outs = [_run([str(p), *argv_case, "--engine", "int8"], tmp / "q.png", env) for p in photos]
                    mse = np.mean([((o - r) ** 2).mean() for o, r in zip(outs, refs)])
                    mean = np.mean([np.abs(o - r).mean() for o, r in zip(outs, refs)])
                    row[f"{path_label}: PSNR dB"] = round(float(10 * np.log10(255**2 / mse)), 1)
                    row[f"{path_label}: mean /255"] = round(float(mean), 1)
                rows.append(row)
    text = ("# INT8 exports against fp32, on this CPU's onnxruntime kernels and on AVX2 ones\n\n"
            f"CPU: {kind['cpu']}, capability {kind['capability']}, native bf16 {'yes' if kind['bf16'] else 'no'}, "
            f"{kind['cores']} cores. Photos {', '.join(PHOTOS)} at 512 px; each value compares the whole "
            "`--engine int8` command with `--engine torch --precision fp32` on the same photo (painting cache off). "
            "'AVX2 kernels' runs onnxruntime capped to its AVX2 + FMA kernels (no AVX-512, no VNNI: "
            "benchmarks/ort_avx2.py), what a CPU without AVX-512 or AVX-VNNI runs.\n\n" + table(rows))
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
