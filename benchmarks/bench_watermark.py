"""The watermark's cost and robustness (brushwork.provenance), measured on real photos.

- **cost**: PSNR of marked vs unmarked, at 1024 px (target >= 40 dB), and the time embedding adds;
- **robustness**: detection after JPEG 90/75/50, a 0.5x resize, a 10% crop (90% of width and height
  kept, off-centre), a brightness change (x1.15 + 10), and JPEG 75 after the resize;
- **false positives**: detection on photos that were never marked (content/, train/content/ and
  train/collections/landscape_photos/ of the shared data), target 0, with the highest z seen;
- **flat sky**: a smooth sky gradient, marked and magnified around its mean, saved as docs/watermark_sky.png
  (the image is generated, no shared photo is written).

    PYTHONPATH=src python benchmarks/bench_watermark.py --marked 24 --clean 150 --out benchmarks/results/watermark.md
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, REPO, table, write_report

from brushwork import provenance


def _jpeg(q: int) -> Callable[[Image.Image], Image.Image]:
    def f(img: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as back:
            return back.convert("RGB")
    return f


def _half(img: Image.Image) -> Image.Image:
    return img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)


def _crop(img: Image.Image) -> Image.Image:
    w, h = round(img.width * 0.9), round(img.height * 0.9)
    x, y = round(img.width * 0.07), round(img.height * 0.03)  # off-centre: the block grid moves
    return img.crop((x, y, x + w, y + h))


def _bright(img: Image.Image) -> Image.Image:
    return Image.fromarray(np.clip(np.asarray(img, np.float32) * 1.15 + 10, 0, 255).astype(np.uint8))


ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "none": lambda im: im, "jpeg 90": _jpeg(90), "jpeg 75": _jpeg(75), "jpeg 50": _jpeg(50),
    "0.5x resize": _half, "10% crop": _crop, "brightness x1.15+10": _bright,
    "0.5x resize + jpeg 75": lambda im: _jpeg(75)(_half(im)),
}


def cpu_kind() -> str:
    """The CPU kind every table names (torch is asked only here, for its view of the CPU)."""
    name = platform.processor() or "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    try:
        import torch

        cap, bf16 = torch.backends.cpu.get_cpu_capability(), torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except ImportError:  # pragma: no cover
        cap, bf16 = "?", "?"
    return f"{name}, {os.cpu_count()} cores, capability {cap}, bf16 {'yes' if bf16 else 'no'}, numpy 1 process"


def photos(data: Path) -> list[Path]:
    found = []
    for sub in ("content", "train/content", "train/collections/landscape_photos"):
        found += sorted(p for p in (data / sub).glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return found


def at(path: Path, longest: int) -> Image.Image:
    with Image.open(path) as im:
        im = im.convert("RGB")
    s = longest / max(im.size)
    return im.resize((round(im.width * s), round(im.height * s)), Image.Resampling.LANCZOS)


def flat_sky(out: Path) -> float:
    """A smooth sky marked, its deviation from the unmarked sky magnified x20 next to it; returns PSNR."""
    yy, xx = np.mgrid[0:512, 0:1024].astype(np.float32)
    sky = np.stack([110 + 60 * yy / 512, 160 + 40 * yy / 512 + 0 * xx, np.full_like(yy, 235)], -1)
    clean = Image.fromarray(sky.astype(np.uint8))
    marked, _ = provenance.embed_watermark(clean)
    diff = np.asarray(marked, np.float32) - np.asarray(clean, np.float32)
    magnified = Image.fromarray(np.clip(128 + 20 * diff, 0, 255).astype(np.uint8))
    sheet = Image.new("RGB", (1024, 1024 + 8), "white")
    sheet.paste(marked, (0, 0))
    sheet.paste(magnified, (0, 512 + 8))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return float(10 * np.log10(255**2 / max(1e-12, float((diff**2).mean()))))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--marked", type=int, default=24, help="photos marked and attacked")
    ap.add_argument("--clean", type=int, default=150, help="never-marked photos for false positives")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    pool = photos(args.data)
    if len(pool) < 2:
        raise SystemExit(f"no photos under {args.data}")
    rng = np.random.default_rng(0)
    order = [pool[i] for i in rng.permutation(len(pool))]
    marked_set, clean_set = order[: args.marked], order[args.marked: args.marked + args.clean]

    psnr, t_embed, t_detect = [], [], []
    hits: dict[str, list[float]] = {k: [] for k in ATTACKS}
    for p in marked_set:
        img = at(p, args.size)
        t0 = time.perf_counter()
        marked, note = provenance.embed_watermark(img)
        t_embed.append(time.perf_counter() - t0)
        assert note is None, note
        a, b = np.asarray(img, np.float32), np.asarray(marked, np.float32)
        psnr.append(float(10 * np.log10(255**2 / ((a - b) ** 2).mean())))
        for name, attack in ATTACKS.items():
            t0 = time.perf_counter()
            d = provenance.detect_watermark(attack(marked))
            t_detect.append(time.perf_counter() - t0)
            hits[name].append(d.z if d.detected else -d.z)
    clean_z, t_clean = [], []
    for p in clean_set:
        img = at(p, args.size)
        t0 = time.perf_counter()
        clean_z.append(provenance.detect_watermark(img).z)
        t_clean.append(time.perf_counter() - t0)
    sky_psnr = flat_sky(REPO / "docs" / "watermark_sky.png")

    rows = [{"change": name, "detected": f"{sum(z > 0 for z in zs)}/{len(zs)}",
             "min z": f"{min(abs(z) for z in zs):.1f}", "median z": f"{np.median(np.abs(zs)):.1f}"}
            for name, zs in hits.items()]
    fp = sum(z >= provenance.Z_THRESHOLD for z in clean_z)
    text = "\n".join([
        "# Watermark: cost, robustness, false positives",
        "",
        f"`PYTHONPATH=src python benchmarks/bench_watermark.py --marked {args.marked} --clean {args.clean}` on "
        f"{cpu_kind()}. Photos at {args.size} px (longest side), picked at random from the shared data "
        f"(content/, train/content/, train/collections/landscape_photos/); threshold z >= {provenance.Z_THRESHOLD}.",
        "",
        "## Cost",
        "",
        table([{"PSNR marked vs unmarked (dB)": f"min {min(psnr):.1f} / median {np.median(psnr):.1f}",
                "flat sky PSNR (dB)": f"{sky_psnr:.1f}",
                f"embed at {args.size} px (s)": f"{np.median(t_embed):.3f}",
                "detect, marked (s)": f"{np.median(t_detect):.3f}",
                "detect, unmarked: full search (s)": f"{np.median(t_clean):.3f}"}]),
        "## Robustness",
        "",
        f"{len(marked_set)} marked photos, each changed as named, then detected.",
        "",
        table(rows),
        "## False positives",
        "",
        f"{fp} of {len(clean_set)} never-marked photos detected; highest z {max(clean_z):.2f}, "
        f"median {np.median(clean_z):.2f}.",
        "",
    ])
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
