"""A CycleGAN collection model (photo -> Monet, photo -> Ukiyo-e) against one-painting methods, on photos it
never trained on.

- quality: held-out landscape photos (the shipped model's ``--exclude`` glob) through the CycleGAN model,
  the CIN net's one painting of that collection (``water_lilies``, ``great_wave``), and AdaIN and ghiasi with
  one held-out painting of the collection, scored by :class:`brushwork.metrics.CollectionEvaluator` against the
  *other* held-out paintings (the one AdaIN and ghiasi copy is left out of the collection, so they are not
  rewarded for copying it), and ghiasi and AdaIN with the collection's built-in preset (``monet_collection``:
  the pooled statistics of the collection's paintings minus the held-out ones, ``scripts/make_presets.py``),
  scored by the same evaluator: collection distance relative
  to the untouched photo's (lower = nearer Monet's collection), content distance to the photo (relu4_2,
  relative), Lab palette distance relative to the photo's, clipped share;
- speed: a 1024x1024 photo, whole command (process start to file written) and peak memory, torch and the
  shipped INT8 exports;
- a sheet for docs/: the bundled portrait (matplotlib's Grace Hopper) and a generated landscape through each
  method, plus the CycleGAN's own cycle F(G(x)); no shared-data image appears on it (AdaIN's painting is named).

    PYTHONPATH=src python benchmarks/bench_cyclegan.py --collection monet \
        --out benchmarks/results/cyclegan.md --sheet docs/cyclegan_sheet.jpg
    PYTHONPATH=src python benchmarks/bench_cyclegan.py --collection ukiyoe \
        --out benchmarks/results/cyclegan_ukiyoe.md --sheet docs/cyclegan_ukiyoe_sheet.jpg
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_ghiasi import _timed, cpu_kind
from common import DEFAULT_DATA, labelled_grid, table, write_report

COLLECTIONS = "train/collections"
PHOTO_GLOB = "*5.jpg"  # the shipped models' held-out photos (their MODEL.json)


@dataclass(frozen=True)
class Collection:
    """A painting collection: its folder, the shipped model's held-out glob, the first held-out painting (the
    one-painting methods' style, left out of the collection they are scored against) and the CIN net's style
    of that painter or school; ``preset``: the built-in collection preset (made without the held-out ones)."""

    name: str
    title: str
    glob: str
    painting: str
    cin: str
    preset: str

    def methods(self) -> tuple[str, ...]:
        one = f"(1 {self.title} painting)"
        return (f"cyclegan {self.name}", f"cin {self.cin}", f"adain {one}", f"ghiasi {one}",
                f"ghiasi -s {self.preset}", f"adain -s {self.preset}")


COLLECTION = {"monet": Collection("monet", "Monet", "monet_f*", "monet_f04c9d8e34.jpg", "water_lilies",
                                  "monet_collection"),
              "ukiyoe": Collection("ukiyoe", "Ukiyo-e", "ukiyoe_012[0-4]*", "ukiyoe_01200.jpg", "great_wave",
                                   "ukiyoe_collection")}


def _held_out(folder: Path, glob: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if fnmatch.fnmatch(p.name.lower(), glob))


def _stylizers(c: Collection, model: str, painting: Path) -> dict[str, Any]:
    from brushwork.pipeline import ImageStylizer, StylizeOptions

    cyclegan, cin, adain, ghiasi, ghiasi_c, adain_c = c.methods()
    return {cyclegan: ImageStylizer(StylizeOptions(model=model)),
            cin: ImageStylizer(StylizeOptions(model=c.cin)),
            adain: ImageStylizer(StylizeOptions(styles=[(str(painting), 1.0)], method="adain")),
            ghiasi: ImageStylizer(StylizeOptions(styles=[(str(painting), 1.0)], method="ghiasi")),
            ghiasi_c: ImageStylizer(StylizeOptions(styles=[(c.preset, 1.0)], method="ghiasi")),
            adain_c: ImageStylizer(StylizeOptions(styles=[(c.preset, 1.0)], method="adain"))}


def quality(data: Path, c: Collection, model: str, n_photos: int) -> list[dict[str, Any]]:
    from brushwork.metrics import CollectionEvaluator, clipped_fraction

    root = data / COLLECTIONS
    photos = _held_out(root / "landscape_photos", PHOTO_GLOB)[:n_photos]
    paintings = _held_out(root / c.name, c.glob)
    one = root / c.name / c.painting
    ev = CollectionEvaluator([p for p in paintings if p != one], size=256)
    stylizers = _stylizers(c, model, one)
    rows = []
    for photo in photos:
        rows.append({"photo": photo.name, "method": "photo (untouched)",
                     **{k: round(v, 3) for k, v in ev.score(photo, photo).as_dict().items()},
                     "clipped %": round(100 * clipped_fraction(photo), 2)})
        for name, st in stylizers.items():
            img = st(str(photo))
            s = ev.score(img, photo)
            rows.append({"photo": photo.name, "method": name, **{k: round(v, 3) for k, v in s.as_dict().items()},
                         "clipped %": round(100 * clipped_fraction(img), 2)})
        print(json.dumps(rows[-len(stylizers):]), file=sys.stderr)
    keys = [k for k in rows[0] if k not in ("photo", "method")]
    means = []
    for name in ("photo (untouched)", *stylizers):
        sel = [r for r in rows if r["method"] == name]
        means.append({"photo": f"mean of {len(sel)}", "method": name,
                      **{k: round(sum(r[k] for r in sel) / len(sel), 3) for k in keys}})
    return [*means, {k: "" for k in rows[0]}, *rows]


def speed(c: Collection, model: str, tmp: Path) -> list[dict[str, Any]]:
    from PIL import Image

    from brushwork.demo import demo_photo
    from brushwork.registry import shipped_models

    photo = tmp / "photo_1024.png"
    Image.open(demo_photo()).convert("RGB").resize((1024, 1024), Image.Resampling.LANCZOS).save(photo)
    bw = [sys.executable, "-m", "brushwork", "stylize", str(photo), "-q"]
    cyclegan, cin = c.methods()[:2]
    cmds = {f"{cyclegan} (torch)": [*bw, "--model", model, "--engine", "torch", "-o", str(tmp / "c.png")],
            f"{cin} (torch)": [*bw, "--model", c.cin, "--engine", "torch", "-o", str(tmp / "w.png")],
            f"{cin} (auto: int8)": [*bw, "--model", c.cin, "-o", str(tmp / "wi.png")],
            f"ghiasi -s {c.preset} (auto: int8, no torch import)": [
                *bw, "-s", c.preset, "--method", "ghiasi", "-o", str(tmp / "g.png")]}
    shipped = {m.name: m.path for m in shipped_models()}
    if model in shipped and (shipped[model] / "model.int8.onnx").is_file():
        cmds[f"{cyclegan} (auto: int8, no torch import)"] = [*bw, "--model", model, "-o", str(tmp / "ci.png")]
    rows = []
    for name, cmd in cmds.items():
        _timed(cmd)  # file cache warm
        times = [_timed(cmd) for _ in range(2)]
        rows.append({"run (1024x1024, whole command)": name, "seconds (best of 2)": round(min(t for t, _ in times), 2),
                     "peak GiB": round(max(g for _, g in times), 2)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def sheet(data: Path, c: Collection, model: str, out: Path) -> None:
    import media
    import torch

    from brushwork.demo import demo_photo
    from brushwork.image.convert import from_tensor, to_tensor
    from brushwork.image.io import load_image
    from brushwork.methods.cyclegan import CycleGANNet
    from brushwork.registry import shipped_models

    painting = data / COLLECTIONS / c.name / c.painting
    stylizers = _stylizers(c, model, painting)
    folder = Path(model) if Path(model).is_dir() else {m.name: m.path for m in shipped_models()}[model]
    net = CycleGANNet.from_pretrained(folder)
    rows = []
    for label, img in (("Grace Hopper", load_image(demo_photo())), ("generated", media.scene((512, 384), seed=4))):
        img = img.resize((round(img.width * 384 / max(img.size)), round(img.height * 384 / max(img.size))))
        tiles = [img, *(st(img) for st in stylizers.values())]
        with torch.no_grad():  # the cycle: the painted photo back through F
            tiles.append(from_tensor(net(to_tensor(tiles[1]), torch.tensor([[0.0, 1.0]])).clamp(0, 1)))
        rows.append((label, tiles))
    one = Path(c.painting).stem
    labelled_grid(rows, ["photo", *c.methods()[:2], f"adain {one}", f"ghiasi {one}", *c.methods()[4:],
                         "cycle F(G(x))"], out, height=240, label_w=100)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", choices=sorted(COLLECTION), default="monet")
    ap.add_argument("--model", default=None, help="the CycleGAN model: shipped name or folder (default: the "
                    "collection's name)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--photos", type=int, default=20, help="held-out photos scored")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--sheet", type=Path, default=None)
    ap.add_argument("--skip", action="append", default=[], choices=["quality", "speed"])
    args = ap.parse_args(argv)
    c = COLLECTION[args.collection]
    model = args.model or c.name
    kind = cpu_kind()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    parts = [f"# CycleGAN photo -> {c.title} vs one-painting methods\n\nCPU: {kind['cpu']}, capability "
             f"{kind['capability']}, native bf16 {'yes (precision auto)' if kind['bf16'] else 'no (fp32)'}, "
             f"{kind['threads']} threads, shared with other jobs. Model: `{model}`; commit {commit}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n"]
    if "quality" not in args.skip:
        parts.append(
            f"## Quality on held-out photos (`{PHOTO_GLOB}`), evaluator at 256 px, means first\n\n"
            f"Collection: the held-out {c.title} paintings (`{c.glob}`) except `{c.painting}`, AdaIN's and "
            f"ghiasi's style; `{c.preset}` is made from the collection's other paintings (none of these). "
            "collection_vs_photo: mean Gram distance to those paintings / the untouched photo's "
            f"(lower = nearer the {c.title} collection); content: relu4_2 distance to the photo (relative); "
            "palette_vs_photo: Lab palette distance to the paintings' pooled colours / the photo's (ratios are "
            "means of per-photo ratios); clipped: share of channel values at 0 or 255. Every method at the "
            "photos' own 256 px.\n\n"
            + table(quality(args.data, c, model, args.photos)))
    if "speed" not in args.skip:
        with tempfile.TemporaryDirectory() as tmp:
            parts.append("## Speed\n\n" + table(speed(c, model, Path(tmp))))
    write_report("\n".join(parts), args.out)  # (before the sheet: a failing sheet keeps the numbers)
    if args.sheet:
        sheet(args.data, c, model, args.sheet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
