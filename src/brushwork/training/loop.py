"""A resumable training loop shared by every trained method.

Checkpoints hold the model, optimizer, step and data-order RNG, written atomically
(temporary file, then rename) so a run killed at any moment resumes where its last
checkpoint left off; ``weights_only`` loading means a checkpoint can carry no code.
Losses go to a JSONL log (one object per logged step) and a loss plot.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from brushwork.errors import ModelError

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"


@dataclass
class LoopConfig:
    steps: int
    checkpoint_every: int = 200
    log_every: int = 10
    out_dir: Path = Path("run")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot resume from {path}: corrupt checkpoint ({type(exc).__name__}); delete it to restart")\
            from exc


def read_log(out_dir: Path) -> list[dict[str, float]]:
    path = Path(out_dir) / LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_loop(cfg: LoopConfig, step_fn: Callable[[int], dict[str, float]], get_state: Callable[[], dict[str, Any]],
             set_state: Callable[[dict[str, Any]], None],
             progress: Callable[[int, int, dict[str, float]], None] | None = None) -> int:
    """Run ``step_fn(step)`` from the last checkpoint to ``cfg.steps``; returns the first step run.

    ``get_state``/``set_state`` gather and restore everything a resume needs.
    """
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    start = 0
    state = load_checkpoint(ckpt_path)
    if state is not None:
        set_state(state)
        start = int(state["step"])
        # drop log lines past the checkpoint: those steps will run again
        kept = [r for r in read_log(out) if r["step"] <= start]
        (out / LOG).write_text("".join(json.dumps(r) + "\n" for r in kept))
    t0 = time.perf_counter()
    with open(out / LOG, "a") as log:
        for step in range(start + 1, cfg.steps + 1):
            losses = step_fn(step)
            if not all(map(lambda v: v == v and abs(v) != float("inf"), losses.values())):
                raise ModelError(f"training diverged at step {step} (loss {losses}); lower the learning rate")
            if step % cfg.log_every == 0 or step == cfg.steps:
                log.write(json.dumps({"step": step, "seconds": round(time.perf_counter() - t0, 2), **losses}) + "\n")
                log.flush()
            if progress is not None:
                progress(step, cfg.steps, losses)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_checkpoint(ckpt_path, {**get_state(), "step": step})
    return start + 1
