"""A resumable training loop shared by every trained method.

Checkpoints hold the model, optimizer, step and data-order RNG, written atomically
(temporary file, then rename) so a run killed at any moment resumes where its last
checkpoint left off; ``weights_only`` loading means a checkpoint can carry no code.
Losses go to a JSONL log (one object per logged step) and a loss plot.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from brushwork.errors import ModelError, TrainingStopped

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


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                   sched: torch.optim.lr_scheduler.LRScheduler, clip: float | None = None) -> None:
    """One update as every trainer makes it: fresh gradients, the (fp16-scaled) step, the lr schedule;
    ``clip`` caps the gradients' global norm (a rare huge batch then cannot throw the net off)."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip:
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip)
    scaler.step(opt)
    scaler.update()
    sched.step()


def net_run_state(net: torch.nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LRScheduler,
                  contents: Any, picker: Any) -> dict[str, Any]:
    """What a net's run needs to resume exactly: weights, optimizer, schedule, data order and both RNGs."""
    return {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
            "contents": contents.state(), "picker": picker.getstate(), "torch_rng": torch.get_rng_state()}


def restore_net_run(state: dict[str, Any], net: torch.nn.Module, opt: torch.optim.Optimizer,
                    sched: torch.optim.lr_scheduler.LRScheduler, contents: Any, picker: Any) -> None:
    """The inverse of :func:`net_run_state` (a checkpoint stores the picker's state tuple as lists)."""
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    contents.load_state(state["contents"])
    rng = state["picker"]
    picker.setstate((rng[0], tuple(rng[1]), rng[2]))
    torch.set_rng_state(state["torch_rng"])


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


@contextlib.contextmanager
def _stop_requests(enabled: bool) -> Any:
    """Turn SIGTERM/SIGINT into a flag checked between steps, so a killed job (a batch
    system's time limit, Ctrl-C) first writes a checkpoint of the last finished step."""
    flag = {"signal": 0}
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, _frame: Any) -> None:
        if flag["signal"]:  # a second signal: stop now, the last periodic checkpoint stands
            raise KeyboardInterrupt
        flag["signal"] = signum

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_loop(cfg: LoopConfig, step_fn: Callable[[int], dict[str, float]], get_state: Callable[[], dict[str, Any]],
             set_state: Callable[[dict[str, Any]], None],
             progress: Callable[[int, int, dict[str, float]], None] | None = None, stop_on_signal: bool = True) -> int:
    """Run ``step_fn(step)`` from the last checkpoint to ``cfg.steps``; returns the first step run.

    ``get_state``/``set_state`` gather and restore everything a resume needs. With
    ``stop_on_signal`` a SIGTERM/SIGINT ends the run after the current step with a checkpoint
    of it and raises :class:`TrainingStopped`.
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

    def record(step: int, losses: dict[str, float]) -> None:
        log.write(json.dumps({"step": step, "seconds": round(time.perf_counter() - t0, 2), **losses}) + "\n")
        log.flush()

    with open(out / LOG, "a") as log, _stop_requests(stop_on_signal) as stop:
        for step in range(start + 1, cfg.steps + 1):
            losses = step_fn(step)
            if not all(map(lambda v: v == v and abs(v) != float("inf"), losses.values())):
                raise ModelError(f"training diverged at step {step} (loss {losses}); lower the learning rate")
            if step % cfg.log_every == 0 or step == cfg.steps:
                record(step, losses)
            if progress is not None:
                progress(step, cfg.steps, losses)
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop["signal"]:
                save_checkpoint(ckpt_path, {**get_state(), "step": step})
            if stop["signal"] and step < cfg.steps:
                if step % cfg.log_every:  # the stopping step's losses, unless logged above
                    record(step, losses)
                raise TrainingStopped(f"stopped at step {step} of {cfg.steps}: checkpoint saved in {out}; "
                                      "run the same command to resume")
    return start + 1
