"""Launch a script under torchrun with two CPU ranks, for the DDP tests of the trainers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest


def run_torchrun(script: Path, arg: Path, timeout: int, extra_env: dict[str, str] | None = None) -> tuple[str, str]:
    """``torchrun --standalone --nproc_per_node 2 script arg``; its stdout and stderr. A hung collective takes
    the launcher and both ranks down and fails the test; a non-zero exit fails it with stderr's tail."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(script), str(arg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun run timed out: {err[-2000:]}")
    assert proc.returncode == 0, err[-3000:]
    return out, err
