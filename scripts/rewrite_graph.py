"""Apply brushwork's exact graph rewrites (brushwork.export.graph) to an existing ONNX export, in place or to
a new file, and check that the outputs are unchanged: an export made before a rewrite landed gets it without
re-exporting or re-quantizing (the shipped INT8 files keep their calibration).

    python scripts/rewrite_graph.py src/brushwork/models/ghiasi/model.int8.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def _feeds(session: object, size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for i in session.get_inputs():  # type: ignore[attr-defined]
        shape = [1, 3, size, size] if i.name == "image" else [d if isinstance(d, int) else 1 for d in i.shape]
        out[i.name] = rng.random(shape, dtype=np.float32)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("-o", "--output", type=Path, help="default: rewrite the file in place")
    ap.add_argument("--check-size", type=int, default=256, help="image side of the equality check")
    args = ap.parse_args(argv)
    import onnx
    import onnxruntime as ort

    from brushwork.export.graph import hoist_quantize, pad_conv_outputs, space_to_depth

    model = onnx.load(str(args.model))
    done = {"space_to_depth": space_to_depth(model), "hoist_quantize": hoist_quantize(model),
            "pad_conv_outputs": pad_conv_outputs(model)}
    out = args.output or args.model
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(model, str(tmp))
    before, after = ort.InferenceSession(str(args.model)), ort.InferenceSession(str(tmp))
    feeds = _feeds(before, args.check_size)
    worst = max(float(np.abs(a - b).max()) for a, b in zip(before.run(None, feeds), after.run(None, feeds)))
    if worst != 0.0:
        tmp.unlink()
        print(f"the rewritten graph's outputs differ by up to {worst}: {args.model} left as it was", file=sys.stderr)
        return 1
    tmp.replace(out)
    print(f"{out}: {done}, outputs bit-identical")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
