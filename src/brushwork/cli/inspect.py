"""``brushwork inspect FILE...``: what an image says about where it came from (provenance record and
watermark), and the ``--no-watermark`` / ``--no-metadata`` switches of the commands that write images.

torch-free: inspecting a file needs only numpy and Pillow.
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("inspect", help="show an image's provenance metadata and whether brushwork's watermark is in it",
                       description="For each FILE: the provenance record brushwork wrote (if the file still has it) "
                                   "and whether the invisible watermark is detected, with a confidence. Works on "
                                   "copies re-saved, resized or cropped by other programs (metadata is often lost "
                                   "there; the watermark usually is not).")
    p.add_argument("files", nargs="+", metavar="FILE", help="image file(s)")
    p.add_argument("--json", action="store_true", help="one JSON object per file on stdout")


def add_output_flags(p: argparse.ArgumentParser) -> None:
    """The switches of every command that writes images."""
    p.add_argument("--no-watermark", action="store_true",
                   help="do not embed the invisible 'made with brushwork' watermark")
    p.add_argument("--no-metadata", action="store_true",
                   help="do not write the provenance record (version, method, model hash, styles, settings, date)")


def provenance_for(args: argparse.Namespace, method: str, styles: Iterable[tuple[str, float]], *,
                   model: str | None = None, model_files: Iterable[str | Path] = (),
                   settings: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The record to write with each output of this command, or None under ``--no-metadata``."""
    if getattr(args, "no_metadata", False):
        return None
    from brushwork.provenance import build_provenance

    return build_provenance(method, styles, model=model, model_files=model_files, settings=settings)


def _open(path: Path) -> Any:
    """The opened, fully decoded image (its metadata intact); anything that is not a readable image (missing,
    a folder, empty, not an image, truncated) is the one-line ImageError every photo input gives."""
    from PIL import Image

    from brushwork.image.io import load_image

    load_image(path, what="image")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = Image.open(path)
        img.load()
    return img


def _text(path: str, info: dict[str, Any]) -> list[str]:
    wm, rec = info["watermark"], info["provenance"]
    lines = [f"{path}: {info['format']} {info['size'][0]}x{info['size'][1]}"]
    if wm["detected"]:
        lines.append(f"  watermark: detected, confidence {wm['confidence']:.3f} (z {wm['z']:.1f}; payload "
                     f"{wm['payload'] or 'unreadable'}, {wm['bits_ok']}/32 bits)")
    else:
        lines.append(f"  watermark: not detected (confidence {wm['confidence']:.3f}, z {wm['z']:.1f})"
                     + (f": {wm['note']}" if wm.get("note") else ""))
    if rec is None:
        lines.append("  provenance: none (no brushwork metadata in the file)")
        return lines
    lines.append(f"  provenance: brushwork {rec.get('version', '?')}, method {rec.get('method', '?')}, "
                 f"date {rec.get('date', '?')}")
    model = rec.get("model")
    if model:
        sha = model.get("sha256")
        lines.append(f"  model: {model.get('name')}" + (f" (sha256 {sha})" if sha else ""))
    for s in rec.get("styles", []):
        label = s.get("name") or f"painting sha256 {s.get('sha256')}"
        lines.append(f"  style: {label} (weight {s.get('weight', 1):g})")
    if rec.get("settings"):
        lines.append("  settings: " + ", ".join(f"{k}={v}" for k, v in rec["settings"].items()))
    return lines


def run(args: argparse.Namespace) -> int:
    from brushwork.provenance import inspect_image

    for name in args.files:
        img = _open(Path(name).expanduser())
        try:
            info = inspect_image(img)
        finally:
            img.close()
        if args.json:
            print(json.dumps({"file": name, **info}))
        else:
            print("\n".join(_text(name, info)))
    return 0
