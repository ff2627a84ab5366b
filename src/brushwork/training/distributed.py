"""Data-parallel training across processes started by ``torchrun`` (``torch.distributed.run``).

Every rank holds the same net and optimizer, draws its own crops (the crop stream is seeded
by rank: the split a ``DistributedSampler`` makes for a finite dataset) and averages
gradients through :class:`~torch.nn.parallel.DistributedDataParallel`. Only rank 0 writes:
the checkpoint (which carries every rank's data-order state, so a resume continues each
rank's own stream), the log, the plot and the final model.

The trainers call these helpers unconditionally; each is a no-op (or the identity) unless
a process group with more than one rank is initialised, so single-process runs are unchanged.
Typical use::

    torchrun --nproc_per_node 4 -m brushwork train johnson --style a.jpg --content photos -o run --device cuda
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from brushwork.errors import ConfigError
from brushwork.training.loop import CHECKPOINT, LoopConfig, run_loop

#: Keys of a trainer's state that differ per rank (the data order); the rest is shared.
PER_RANK_KEYS = ("contents", "styles", "torch_rng")
_RANK_SEED_STRIDE = 1_000_003  # a prime: rank seeds never meet the +1/+2 offsets the trainers use


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when not launched by torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0 (or a single process): the one that writes files and reports progress."""
    return rank() == 0


def backend_for(device: str | torch.device) -> str:
    """nccl for CUDA devices, gloo for everything else (CPU)."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_from_env(device: str | torch.device = "cpu") -> torch.device:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...).

    Returns the device this rank should use: ``cuda:LOCAL_RANK`` when ``device`` is CUDA
    (one GPU per process), else ``device`` unchanged. Without torchrun (world size 1) it
    initialises nothing.
    """
    dev = torch.device(device)
    if env_world_size() <= 1 or (dist.is_available() and dist.is_initialized()):
        return dev
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed: run a single process")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but CUDA is not available on this machine")
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend_for(dev), init_method="env://")
    return dev


def cleanup() -> None:
    """Wait for every rank, then leave the process group (no-op when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(RuntimeError):  # a rank that failed may already have left
            dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def launch(device: str | torch.device = "cpu") -> Iterator[torch.device]:
    """``with launch(device) as dev:`` join torchrun's group (if any), yield this rank's device, leave at exit."""
    started = not (dist.is_available() and dist.is_initialized())
    dev = init_from_env(device)
    try:
        yield dev
    finally:
        if started:
            cleanup()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def rank_seed(seed: int) -> int:
    """A per-rank seed for the crop stream: rank 0 keeps ``seed``, so one process sees what it always saw."""
    return seed + _RANK_SEED_STRIDE * rank()


def wrap(module: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
    """``module`` in DistributedDataParallel when distributed, else ``module`` itself.

    ``find_unused_parameters``: for nets where a step leaves some trained parameters out
    (StyleBank's other banks, its identity branch).
    """
    if not is_distributed():
        return module
    from torch.nn.parallel import DistributedDataParallel

    dev = next(module.parameters()).device
    ids = [dev] if dev.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused_parameters)


def _mean_losses(losses: dict[str, float]) -> dict[str, float]:
    """Losses averaged over ranks (what the averaged gradient optimised); ``*_index`` values are shared, kept."""
    keys = sorted(k for k in losses if not k.endswith("_index"))
    if not keys:
        return losses
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.tensor([float(losses[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {**losses, **dict(zip(keys, t.tolist()))}


def run_training_loop(cfg: LoopConfig, step_fn: Callable[[int], dict[str, float]],
                      get_state: Callable[[], dict[str, Any]], set_state: Callable[[dict[str, Any]], None],
                      progress: Callable[[int, int, dict[str, float]], None] | None = None,
                      per_rank: Sequence[str] = PER_RANK_KEYS) -> int:
    """:func:`~brushwork.training.loop.run_loop`, made rank-aware; exactly ``run_loop`` in one process.

    Distributed: losses are averaged over ranks; at each checkpoint every rank's ``per_rank``
    state is gathered into rank 0's checkpoint (under ``"ranks"``) and given back to its own
    rank on resume (a rank the checkpoint does not know keeps its fresh, rank-seeded state).
    Other ranks run the same loop against a private temporary folder that reads rank 0's
    checkpoint, so the shared run folder only ever holds rank 0's files.
    """
    if not is_distributed():
        return run_loop(cfg, step_fn, get_state, set_state, progress)
    me = rank()

    def step(s: int) -> dict[str, float]:
        return _mean_losses(step_fn(s))

    def gathered_state() -> dict[str, Any]:
        state = get_state()
        mine = {k: state[k] for k in per_rank if k in state}
        everyone: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(everyone, mine)
        return {**state, "ranks": everyone} if me == 0 else {}  # only rank 0's copy is ever written

    def own_state(state: dict[str, Any]) -> None:
        saved = state.get("ranks") or []
        if me > 0:
            fresh = get_state()
            mine = saved[me] if me < len(saved) else {k: fresh[k] for k in per_rank if k in fresh}
            state = {**state, **mine}
        set_state(state)

    if me == 0:
        return run_loop(cfg, step, gathered_state, own_state, progress, stop_on_signal=False)
    with tempfile.TemporaryDirectory(prefix=f"brushwork-rank{me}-") as tmp:
        shared = Path(cfg.out_dir) / CHECKPOINT
        if shared.is_file():  # resume from rank 0's checkpoint; our own saves replace the link, not the file
            os.symlink(shared.resolve(), Path(tmp) / CHECKPOINT)
        return run_loop(replace(cfg, out_dir=Path(tmp)), step, gathered_state, own_state, None,
                        stop_on_signal=False)


def train_and_save(loop: LoopConfig, step_fn: Callable[[int], dict[str, float]],
                   get_state: Callable[[], dict[str, Any]], set_state: Callable[[dict[str, Any]], None],
                   progress: Callable[[int, int, dict[str, float]], None] | None, net: nn.Module,
                   training: Callable[[list[dict[str, Any]]], dict[str, Any]], title: str) -> Path:
    """Run (or resume) the loop, then rank 0 writes ``out/model`` (``net.save_pretrained`` with the
    ``training(history)`` record, also as ``training.json``) and the loss plot; returns the model folder."""
    import json

    from brushwork.plot import plot_losses
    from brushwork.training.loop import read_log

    out = Path(loop.out_dir)
    run_training_loop(loop, step_fn, get_state, set_state, progress)
    if is_main():
        history = read_log(out)
        record = training(history)
        net.eval().save_pretrained(out / "model", meta={"training": record})
        plot_losses(history, out / "losses.png", title=title)
        (out / "model" / "training.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    barrier()  # the other ranks wait for rank 0's model
    return out / "model"
