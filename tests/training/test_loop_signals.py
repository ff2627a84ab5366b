"""A SIGTERM/SIGINT mid-run ends training with a checkpoint of the last finished step, and a rerun resumes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from brushwork.errors import TrainingStopped
from brushwork.training.loop import LoopConfig, load_checkpoint, read_log, run_loop


def _run(out: Path, steps: int, kill_at: int | None = None, sig: int = signal.SIGTERM) -> list[int]:
    state = {"w": 0}
    done: list[int] = []

    def step_fn(step: int) -> dict[str, float]:
        state["w"] += step
        done.append(step)
        if step == kill_at:
            os.kill(os.getpid(), sig)  # delivered now, as a batch system's time limit would
        return {"loss": 1.0 / step}

    cfg = LoopConfig(steps=steps, checkpoint_every=100, log_every=4, out_dir=out)
    run_loop(cfg, step_fn, lambda: dict(state), lambda s: state.update(w=s["w"]))
    return done


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_the_last_step_then_resume_continues(tmp_path, sig):
    old = signal.getsignal(sig)
    with pytest.raises(TrainingStopped, match=r"stopped at step 7 of 10.*resume"):
        _run(tmp_path, 10, kill_at=7, sig=sig)
    assert signal.getsignal(sig) == old  # the handler is the caller's again
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ckpt["step"] == 7 and ckpt["w"] == sum(range(1, 8))  # no periodic checkpoint was due: the stop wrote it
    assert [r["step"] for r in read_log(tmp_path)] == [4, 7]
    assert _run(tmp_path, 10) == [8, 9, 10]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["w"] == sum(range(1, 11))
    assert [r["step"] for r in read_log(tmp_path)] == [4, 7, 8, 10]


def test_without_a_signal_nothing_changes(tmp_path):
    assert _run(tmp_path, 5) == [1, 2, 3, 4, 5]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 5
