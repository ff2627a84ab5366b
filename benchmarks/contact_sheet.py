"""Render a contact sheet of photo / painting / result rows, to judge results by eye.

    python benchmarks/contact_sheet.py --size 384 --steps 200 -o contact_sheet.jpg

Reads images from ../shared/data (or --data / $BRUSHWORK_DATA). Each row: the photo, the
painting, the default result, and variants (colour kept, strength, mask) for a few rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

from brushwork.methods.optimize import StyleSpec, optimize

REPO = Path(__file__).resolve().parents[1]
PAIRS = [
    ("content/tubingen.jpg", "style/starry_night.jpg", {}),
    ("content/golden_gate.jpg", "style/great_wave.jpg", {}),
    ("content/brad_pitt.jpg", "style/picasso_self_portrait_1907.jpg", {}),
    ("content/chicago.jpg", "style/composition_vii.jpg", {}),
    ("content/tubingen.jpg", "style/starry_night.jpg", {"preserve_color": "luminance"}),
    ("content/golden_gate.jpg", "style/great_wave.jpg", {"preserve_color": "match"}),
    ("masks/portrait_02390.jpg", "style/the_scream.jpg", {"mask": "masks/portrait_02390_mask_inv.png"}),
]


def tile(img: Image.Image, h: int) -> Image.Image:
    return img.resize((max(1, round(img.width * h / img.height)), h), Image.Resampling.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("BRUSHWORK_DATA", REPO.parent / "shared" / "data"))
    ap.add_argument("--data", type=Path, default=default_data)
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rows", type=int, default=len(PAIRS))
    ap.add_argument("-o", "--output", type=Path, default=Path("contact_sheet.jpg"))
    args = ap.parse_args(argv)
    h = 220
    rows, log = [], []
    for content, style, opts in PAIRS[: args.rows]:
        opts = {k: (str(args.data / v) if k == "mask" else v) for k, v in opts.items()}
        t = time.perf_counter()
        res = optimize(args.data / content, [StyleSpec(args.data / style)], size=args.size, steps=args.steps, **opts)
        extras = " ".join(f"{k}={Path(str(v)).stem}" for k, v in opts.items())
        label = f"{Path(content).stem} + {Path(style).stem} {extras}"
        losses = {k: round(v, 4) for k, v in res.losses.items()}
        log.append({"row": label, "seconds": round(time.perf_counter() - t, 1), **losses})
        print(json.dumps(log[-1]), file=sys.stderr)
        originals = [Image.open(args.data / p).convert("RGB") for p in (content, style)]
        tiles = [tile(originals[0], h), tile(originals[1], h), tile(res.image, h)]
        row = Image.new("RGB", (sum(t.width for t in tiles) + 8 * len(tiles), h + 18), "white")
        x = 0
        for t_ in tiles:
            row.paste(t_, (x, 18))
            x += t_.width + 8
        ImageDraw.Draw(row).text((4, 3), label, fill="black")
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    sheet.save(args.output, quality=90)
    args.output.with_suffix(".json").write_text(json.dumps(log, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
