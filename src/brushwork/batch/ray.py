"""Batch stylization on Ray Data: the same plan, manifest and summary as the local run, the
photos spread over a pool of actors that each load the model once.

The driver (this process) plans (what to do, what to skip), then streams the to-do list through
``map_batches`` with a callable class on ``ActorPoolStrategy(size=N)`` actors; each actor
stylizes its photo and writes the output atomically, and returns one row (index, reason,
seconds). Only the driver writes the manifest and the summary, from those rows, so resume
and failure isolation are exactly the local path's. The actors read and write the files by path:
``in_dir`` and ``out_dir`` must be visible at the same paths on every node (one machine, or a
shared filesystem), and brushwork must be installed there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from brushwork.batch.local import BatchPlan, BatchRecorder, BatchSummary, Progress, open_stylizer, stylize_file
from brushwork.errors import BrushworkError, ConfigError
from brushwork.pipeline import StylizeOptions

#: Seconds to wait for a cluster's port before giving up (ray.init itself retries for minutes).
CONNECT_TIMEOUT = 5.0
_RAY_PORT, _CLIENT_PORT = 6379, 10001


def import_ray() -> ModuleType:
    """Ray (with Ray Data), or one line saying how to install it."""
    try:
        import ray
        import ray.data  # the extra, not only the core
    except ImportError as exc:
        raise ConfigError("--ray needs Ray Data, which is not installed: pip install 'brushwork[ray]'") from exc
    return ray


def _split_host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        return text, default_port
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ConfigError(f"bad Ray address '{text}': want HOST:PORT, auto or local[:CPUS]") from None


def _check_reachable(address: str, timeout: float) -> None:
    """Fail fast on an address nothing listens at: ray.init would retry for minutes."""
    client = address.startswith("ray://")
    host, port = _split_host_port(address.removeprefix("ray://"), _CLIENT_PORT if client else _RAY_PORT)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(f"no Ray cluster answers at {address} ({why} after trying {timeout:g} s): start one "
                          "with `ray start --head`, or use --ray local") from None


def _resolve_auto(ray: ModuleType) -> str:
    """The cluster 'auto' means (RAY_ADDRESS or the last one started on this machine), so it can be checked too."""
    try:
        from ray._private.services import canonicalize_bootstrap_address
    except ImportError:  # pragma: no cover - a Ray without this helper: let ray.init decide
        return "auto"
    try:
        return canonicalize_bootstrap_address("auto") or "auto"
    except ConnectionError:
        raise ConfigError("--ray auto found no running Ray cluster on this machine (start one with "
                          "`ray start --head`, or use --ray local)") from None


@contextlib.contextmanager
def ray_session(address: str, timeout: float = CONNECT_TIMEOUT) -> Iterator[ModuleType]:
    """Connect to (or, for ``local[:CPUS]``, start) Ray for one run, and disconnect after.

    ``address``: ``HOST:PORT`` or ``ray://HOST:PORT`` (a running cluster), ``auto`` (``RAY_ADDRESS`` or
    the cluster last started here), ``local`` / ``local:N`` (a private Ray on this machine with all or
    N CPUs). A Ray this process has already initialised is used as it is and left running.
    """
    ray = import_ray()
    local = address == "local" or address.startswith("local:")
    if not local:
        target = _resolve_auto(ray) if address == "auto" else address
        if target != "auto":
            _check_reachable(target, timeout)
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if local:
            cpus = address.partition(":")[2]
            if cpus and not (cpus.isdigit() and int(cpus) > 0):
                raise ConfigError(f"bad --ray '{address}': local:N wants a whole number of CPUs")
            ray.init(address="local", num_cpus=int(cpus) if cpus else None, **kwargs)
        else:
            # A port that answers but is not Ray's would hold ray.init in its ~20 s retry loop: shorten it
            # (Ray's own knob; a value the user set is kept).
            with _env_default("RAY_gcs_server_port_wait_time_s", str(max(5, round(2 * timeout)))):
                ray.init(address=address, **kwargs)
    except BrushworkError:
        raise
    except Exception as exc:
        what = "start a local Ray" if local else f"connect to Ray at {address}"
        raise ConfigError(f"cannot {what}: {_first_line(exc)}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _logger_level(name: str, level: int) -> Iterator[None]:
    """Ray Data's execution chatter (plans, 'progress bars disabled') off for the run: the caller reports."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)


@contextlib.contextmanager
def _env_default(name: str, value: str) -> Iterator[None]:
    """``name=value`` in the environment for the block, unless it is set already."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _brushwork_cause(exc: BaseException) -> BrushworkError | None:
    """The BrushworkError an actor raised, through Ray's wrappers (``cause`` / ``__cause__``)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, BrushworkError):
            return e
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None


class StylizeActor:
    """One Ray actor: the model loaded once in ``__init__``, then one photo per batch row."""

    def __init__(self, options: StylizeOptions, quality: int = 95, threads: int | None = None,
                 **marks: Any) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)  # the actor's CPU share, not every core of the node
        from brushwork.pipeline import ImageStylizer

        self.stylizer = ImageStylizer(options)
        self.quality = quality
        self.marks = marks  # provenance=, watermark= for save_image

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        reasons, seconds = [], []
        for src, dst in zip(batch["src"], batch["dst"]):
            reason, secs = stylize_file(self.stylizer, Path(str(src)), Path(str(dst)), self.quality, **self.marks)
            reasons.append(reason or "")
            seconds.append(secs)
        return {"index": np.asarray(batch["index"]), "reason": np.asarray(reasons, dtype=object),
                "seconds": np.asarray(seconds, dtype=np.float64)}


def run_ray(plan: BatchPlan, address: str = "local", workers: int | None = None, cpus_per_worker: float = 1.0,
            gpus_per_worker: float = 0.0, progress: Progress | None = None,
            timeout: float = CONNECT_TIMEOUT) -> BatchSummary:
    """Stylize ``plan.todo`` on a Ray cluster with ``workers`` actors (default: as many as the
    cluster's CPUs allow at ``cpus_per_worker`` each, at most one per photo).

    The settings are first tried on a small picture here (on the CPU), so a bad style or model is one
    error before any cluster work. ``gpus_per_worker`` > 0 gives each actor a GPU share; pair it with
    ``options.device="cuda"``.
    """
    if not plan.todo:
        with BatchRecorder(plan, "ray", progress, workers=0) as rec:
            pass
        assert rec.summary is not None
        return rec.summary
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if cpus_per_worker <= 0:
        raise ConfigError(f"CPUs per worker must be > 0, got {cpus_per_worker}")
    started = time.perf_counter()
    import_ray()
    options = plan.settings.stylize
    open_stylizer(replace(options, device="cpu"))
    with ray_session(address, timeout) as ray:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_worker))
        n = min(n, len(plan.todo))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # the caller's progress callback reports
        rows = [{"index": i, "src": str(plan.src(item)), "dst": str(plan.dst(item))}
                for i, item in enumerate(plan.todo)]
        ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), 4096)).map_batches(
            StylizeActor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=n),
            fn_constructor_kwargs={"options": options, "quality": plan.settings.quality,
                                   "threads": max(1, int(cpus_per_worker)),
                                   "provenance": plan.settings.provenance, "watermark": plan.settings.watermark},
            num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None)
        with (BatchRecorder(plan, "ray", progress, workers=n, started=started) as rec,
              _logger_level("ray.data", logging.ERROR)):
            try:
                for row in ds.iter_rows():
                    rec.record(plan.todo[int(row["index"])], str(row["reason"]) or None, float(row["seconds"]))
            except (KeyboardInterrupt, BrushworkError):
                raise
            except Exception as exc:
                cause = _brushwork_cause(exc)
                if cause is not None:
                    raise cause from None
                raise BrushworkError(f"the Ray run stopped: {_first_line(exc)}") from exc
    assert rec.summary is not None
    return rec.summary


__all__ = ["StylizeActor", "import_ray", "ray_session", "run_ray"]
