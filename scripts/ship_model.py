"""Copy a finished training run's model into the package, with its checksum and provenance.

    python scripts/ship_model.py runs/adain src/brushwork/models/adain \\
        --command "brushwork train adain ..." [--command "..."] --note "..."

Writes DEST/config.json + model.safetensors (from RUN/model), DEST/losses.png, and
DEST/MODEL.json: sha256 and size of the weights, every command that trained them (a resumed
run has several), the data they read, the final logged losses and the steps trained.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--command", action="append", required=True, help="a training command, in order")
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    model = args.run / "model"
    args.dest.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copyfile(model / name, args.dest / name)
    if (args.run / "losses.png").is_file():
        shutil.copyfile(args.run / "losses.png", args.dest / "losses.png")
    weights = (args.dest / "model.safetensors").read_bytes()
    training = json.loads((model / "training.json").read_text())
    log = [json.loads(line) for line in (args.run / "log.jsonl").read_text().splitlines() if line.strip()]
    card = {
        "sha256": hashlib.sha256(weights).hexdigest(),
        "bytes": len(weights),
        "commands": args.command,
        "data": {"content": training.get("content", training.get("photos")),
                 "styles": training.get("styles", training.get("paintings")),
                 "held_out": training.get("exclude"),
                 **({"held_out_paintings": training.get("exclude_styles") or training["exclude_paintings"]}
                    if training.get("exclude_styles") or training.get("exclude_paintings") else {})},
        # a CycleGAN's model folder follows its checkpoints: it records the steps done of those planned
        "steps": training.get("steps_done", training.get("steps")),
        **({"steps_planned": training["steps"]} if "steps_done" in training else {}),
        # a warm-started leg: the model it started from, so the steps add up across legs
        **({"warm_start": training["init"]} if training.get("init") else {}),
        "final_logged": log[-1] if log else None,
        "device": training.get("device"), "precision": training.get("precision"), "torch": training.get("torch"),
        "note": args.note,
    }
    (args.dest / "MODEL.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"{args.dest}: {len(weights) / 1e6:.1f} MB, sha256 {card['sha256'][:16]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
