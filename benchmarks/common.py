"""Helpers the benchmark scripts share: markdown tables, peak memory in a fresh process, data path."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("BRUSHWORK_DATA", REPO.parent / "shared/data"))


def table(rows: list[dict[str, Any]]) -> str:
    """Rows of equal keys as a markdown table."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def peak_rss_gib() -> float:
    """This process's peak resident memory so far."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def run_child(script: str, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``script args`` in a fresh interpreter (its peak memory is its own) and parse its last stdout line."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=full_env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_report(text: str, out: Path | None) -> None:
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)


def labelled_grid(rows: list[tuple[str, list[Any]]], headers: list[str], out: Path, height: int = 192,
                  label_w: int = 110) -> None:
    """Save rows of PIL tiles (scaled to ``height``) as one JPEG: a label left of each row, headers on top."""
    from PIL import Image, ImageDraw

    rows = [(label, [t.resize((round(t.width * height / t.height), height)) for t in tiles]) for label, tiles in rows]
    pad, head = 4, 18
    width = label_w + max(sum(t.width + pad for t in tiles) for _, tiles in rows)
    sheet = Image.new("RGB", (width, head + len(rows) * (height + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    x = label_w
    for text, tile in zip(headers, rows[0][1]):
        draw.text((x + 2, 3), text.replace("_", " ")[:26], fill="black")
        x += tile.width + pad
    for i, (label, tiles) in enumerate(rows):
        y = head + i * (height + pad)
        draw.text((6, y + height // 2), label, fill="black")
        x = label_w
        for tile in tiles:
            sheet.paste(tile, (x, y))
            x += tile.width + pad
    sheet.save(out, quality=82, optimize=True)
