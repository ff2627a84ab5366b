"""``brushwork export onnx|quantize``: the CLI face of :mod:`brushwork.export`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def add_parser(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    ex = sub.add_parser("export", help="export a model to ONNX, or quantize an export to INT8")
    esub = ex.add_subparsers(dest="export_command", metavar="FORMAT", parser_class=parser_class, required=True)
    on = esub.add_parser("onnx", help="a trained model as one ONNX file (dynamic height and width)")
    on.add_argument("--model", required=True, metavar="NAME",
                    help="'adain' (the shipped decoder), a shipped model or style name, or a trained folder")
    on.add_argument("--decoder", metavar="DIR", help="with --model adain: another trained decoder folder")
    on.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    on.add_argument("--json", action="store_true")
    q = esub.add_parser("quantize", help="an INT8 copy of an exported .onnx (static QDQ, calibrated on photos)")
    q.add_argument("model", metavar="IN.onnx")
    q.add_argument("-o", "--output", required=True, metavar="OUT.onnx")
    q.add_argument("--mode", choices=["static", "dynamic"], default="static",
                   help="static: ranges calibrated on --calibrate photos (fast on CPU); dynamic: the baseline")
    q.add_argument("--calibrate", action="append", default=[], metavar="PATH",
                   help="photos or folders of photos for static calibration (repeatable; 8-32 typical photos)")
    q.add_argument("--max-photos", type=int, default=16, help="calibration photos used at most (default 16)")
    q.add_argument("--size", type=int, default=384, help="calibration photos' longest side (default 384)")
    q.add_argument("--calibrate-paintings", action="append", default=[], metavar="PATH",
                   help="a ghiasi export: paintings or folders of them; its statistics encoder is then quantized "
                        "too, calibrated on them (repeatable)")
    q.add_argument("--max-paintings", type=int, default=32, help="calibration paintings used at most (default 32)")
    q.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out calibration files whose name matches (held-out photos and paintings)")
    q.add_argument("--float-last", type=int, default=0, metavar="N",
                   help="keep the last N convolutions in float (a CycleGAN: 3, against grain in flat areas)")
    q.add_argument("--json", action="store_true")


def _photos(paths: list[str], limit: int, exclude: list[str] | None = None) -> list[Path]:
    from fnmatch import fnmatch

    from brushwork.errors import ConfigError

    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise ConfigError(f"calibration path not found: {p}")
    found = [f for f in found if not any(fnmatch(f.name, g) for g in exclude or [])]
    if paths and not found:
        raise ConfigError(f"no images found in {', '.join(paths)}")
    step = max(1, len(found) // max(limit, 1))  # spread over the folder, not its first files
    return found[::step][:limit]


def run(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError
    from brushwork.export.onnx import export_adain, export_feedforward

    out = Path(args.output)
    if out.suffix != ".onnx":
        raise ConfigError(f"output must end in .onnx, got '{out}'")
    if args.export_command == "onnx":
        from brushwork.methods.registry import model_method

        if args.model == "adain":
            files = list(export_adain(out, decoder=args.decoder))
        elif model_method(args.model) == "ghiasi":
            from brushwork.export.onnx import export_ghiasi
            from brushwork.registry import shipped_models

            shipped = {m.name: m.path for m in shipped_models() if m.kind == "ghiasi"}
            files = list(export_ghiasi(shipped.get(args.model, args.model), out))
        elif model_method(args.model) == "cyclegan":
            from brushwork.export.cyclegan import export_cyclegan
            from brushwork.inference.cyclegan import resolve_cyclegan

            files = list(export_cyclegan(resolve_cyclegan(args.model), out))
        else:
            if args.decoder:
                raise ConfigError("--decoder goes with --model adain")
            from brushwork.registry import resolve_model

            folder, _ = resolve_model(args.model)
            files = [export_feedforward(folder, out)]
        report = {"model": args.model, "files": [str(f) for f in files],
                  "megabytes": round(sum(f.stat().st_size for f in files) / 1e6, 2)}
    else:
        from brushwork.export.quantize import model_bytes, quantize

        src = Path(args.model)
        if not src.is_file():
            raise ConfigError(f"ONNX model not found: {src}")
        photos = _photos(args.calibrate, args.max_photos, args.exclude)
        paintings = _photos(args.calibrate_paintings, args.max_paintings, args.exclude)
        if args.mode == "static" and not photos:
            raise ConfigError("static quantization needs photos: --calibrate DIR (a few typical photos)")
        quantize(src, out, mode=args.mode, photos=photos, size=args.size, paintings=paintings,
                 float_last=args.float_last)
        report = {"model": str(src), "output": str(out), "mode": args.mode, "calibration_photos": len(photos),
                  **({"calibration_paintings": len(paintings)} if paintings else {}),
                  "megabytes_before": round(model_bytes(src) / 1e6, 2), "megabytes": round(model_bytes(out) / 1e6, 2)}
    if args.json:
        print(json.dumps(report))
    else:
        print(" ".join(f"{k}={v}" for k, v in report.items()))
    return 0
