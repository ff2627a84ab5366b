"""The shipped INT8 nets with and without their narrow last convolution padded to 16 output channels
(``brushwork.export.graph.pad_conv_outputs``), on this CPU's onnxruntime kernels and on AVX2 ones.

Each row is onnxruntime's own profile of a 1024x1024 pass, 2 threads: the padded layer's kernel time and the
whole run (medians of ``--repeats`` runs after a warm-up, the two files interleaved), and whether the outputs
are bit-identical. The unpadded file is the one at git revision ``--before`` (the commit before the padding).

    python benchmarks/ort_avx2.py /tmp/ort_avx2
    python benchmarks/bench_conv_padding.py --ort-avx2 /tmp/ort_avx2 --out benchmarks/results/conv_padding.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_report

from brushwork.inference.engine import cpu_kind

ROOT = Path(__file__).resolve().parents[1]
FILES = {"cin (built-in styles)": "src/brushwork/models/cin/model.int8.onnx",
         "ghiasi (any painting)": "src/brushwork/models/ghiasi/model.int8.onnx"}


def _feeds(session: Any, size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {i.name: rng.random([1, 3, size, size] if i.name == "image" else
                               [d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32)
            for i in session.get_inputs()}


def profile(paths: list[str], repeats: int, size: int) -> list[dict[str, Any]]:
    """Per file: median whole-run ms, median ms of the last convolution, and its output."""
    import onnxruntime as ort

    sessions = []
    for p in paths:
        o = ort.SessionOptions()
        o.enable_profiling, o.intra_op_num_threads, o.enable_mem_pattern = True, 2, False
        o.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"bw_pad_{os.getpid()}_{len(sessions)}")
        sessions.append(ort.InferenceSession(p, o, providers=["CPUExecutionProvider"]))
    feeds = _feeds(sessions[0], size)
    outs = [s.run(None, feeds)[0] for s in sessions]  # warm-up
    for _ in range(repeats):
        for s in sessions:
            s.run(None, feeds)
    rows = []
    for s, y in zip(sessions, outs):
        events = json.loads(Path(s.end_profiling()).read_text())
        runs = [e["dur"] / 1e3 for e in events if e.get("name") == "model_run"][1:]
        convs = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
                 and e["args"]["op_name"] == "QLinearConv"]
        last = convs[-1]["name"]
        times = [e["dur"] / 1e3 for e in convs if e["name"] == last][1:]
        rows.append({"run": statistics.median(runs), "last": statistics.median(times), "out": y})
    return rows


def child(args: argparse.Namespace) -> None:
    res = []
    for label, (before, after) in json.loads(args.child).items():
        a, b = profile([before, after], args.repeats, args.size)
        res.append({"model": label, "before run ms": round(a["run"], 1), "after run ms": round(b["run"], 1),
                    "before last conv ms": round(a["last"], 1), "after last conv ms": round(b["last"], 1),
                    "bit-identical": bool(np.array_equal(a["out"], b["out"]))})
    print(json.dumps(res))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ort-avx2", type=Path, metavar="DIR", help="an onnxruntime copy capped to AVX2 kernels")
    ap.add_argument("--before", default="d27c3a2", help="git revision of the unpadded files")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        pairs = {}
        for label, rel in FILES.items():
            old = Path(tmp) / Path(rel).parent.name
            old.write_bytes(subprocess.run(["git", "show", f"{args.before}:{rel}"], cwd=ROOT, check=True,
                                           capture_output=True).stdout)
            pairs[label] = [str(old), str(ROOT / rel)]
        columns = {"this CPU's kernels": {}}
        if args.ort_avx2:
            columns["AVX2 kernels (onnxruntime capped)"] = {"PYTHONPATH": str(args.ort_avx2)}
        rows = []
        for kernels, env in columns.items():
            cmd = [sys.executable, __file__, "--child", json.dumps(pairs), "--repeats", str(args.repeats),
                   "--size", str(args.size)]
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env}, check=True)
            rows += [{"kernels": kernels, **r} for r in json.loads(done.stdout.strip().splitlines()[-1])]
    kind = cpu_kind()
    text = (f"# Narrow convolutions padded to 16 output channels\n\nCPU: {kind['cpu']}, capability "
            f"{kind['capability']}, native bf16 {'yes' if kind['bf16'] else 'no'}, {kind['cores']} cores, 2 threads; "
            f"{args.size}x{args.size} pass, onnxruntime profile, medians of {args.repeats} runs, the two files "
            f"interleaved; 'before' = the shipped file at {args.before}.\n\n" + table(rows))
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
