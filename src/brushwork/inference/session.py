"""onnxruntime sessions for brushwork's exported graphs, with one-line errors.

An export carries a JSON metadata entry (``brushwork``: its kind, style names, padding, ...)
written by :mod:`brushwork.export.onnx`; reading it tells one kind of graph from another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from brushwork.errors import ConfigError, ModelError, ResourceError

META_KEY = "brushwork"


def require_ort() -> Any:
    """onnxruntime, or a one-line error that says how to get it."""
    try:
        import onnxruntime
    except ImportError:
        raise ResourceError("onnxruntime is not installed: pip install 'brushwork[onnx]' (or pip install "
                            "onnxruntime)") from None
    return onnxruntime


def has_ort() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def session(path: str | Path, threads: int | None = None, provider: str = "CPUExecutionProvider",
            arena: bool = True) -> Any:
    """An onnxruntime session on ``provider``; ``threads`` None = onnxruntime's default (all cores).
    ``arena`` False for a graph run once or twice (:func:`session_from_bytes`)."""
    if not Path(path).is_file():
        raise ModelError(f"ONNX model not found: {path}")
    return session_from_bytes(str(path), path, threads, provider, arena)


def session_from_bytes(model: bytes | str, path: str | Path, threads: int | None = None,
                       provider: str = "CPUExecutionProvider", arena: bool = True) -> Any:
    """A session on a serialized graph (or a file name); ``path`` names it in errors. ``arena`` False: memory
    goes back after each run (for a graph run once, whose arena would otherwise stay at its peak). The arena
    grows in powers of two: a one-photo command's 1024 px pass peaks at ~1.0 GiB with it, ~0.62 GiB without."""
    ort = require_ort()
    available = ort.get_available_providers()
    if provider not in available:
        raise ConfigError(f"this onnxruntime has no {provider} (it has: {', '.join(available)})")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    opts.enable_cpu_mem_arena = arena
    # no memory pattern: its one block per run is fresh pages again on every run (~28k page faults at 1024 px,
    # 20-25% of the second pass) and raises the peak by ~0.1 GiB; the arena alone reuses its chunks
    opts.enable_mem_pattern = False
    # no spinning: a command runs three or four sessions one after the other (statistics encoder, transformer,
    # palette finish), each with its own pool, and the pool that last ran would keep spinning on the cores the
    # next one needs (40-50 ms of a 1024 px ghiasi command on 2 cores). (One process-wide pool would do it too,
    # but once made onnxruntime refuses every session without it, other libraries' sessions included.)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, sess_options=opts, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own types for unreadable files
        raise ModelError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0][:200]}") from exc


def keep_arena(folder: str | Path, many: bool) -> bool:
    """Whether a model folder's session keeps onnxruntime's memory arena. The arena makes even a single
    1024 px pass ~20-30% faster (its chunks are reused from node to node instead of fresh pages for each)
    but rounds the peak up to a power of two: kept for many photos and for sub-pixel nets (nothing at full
    resolution: ~0.36 GiB at 1024 px with it), off for one photo through a plain net (~0.96 GiB with it,
    ~0.6 without)."""
    if many:
        return True
    try:
        return bool(json.loads((Path(folder) / "config.json").read_text()).get("subpixel"))
    except (OSError, ValueError, AttributeError):
        return False


def session_meta(sess: Any, path: str | Path) -> dict[str, Any]:
    """The brushwork metadata of a loaded graph; one line if it carries none."""
    try:
        return json.loads(sess.get_modelmeta().custom_metadata_map[META_KEY])
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{path} is not a brushwork ONNX export: {exc}") from exc


def read_meta(path: str | Path) -> dict[str, Any]:
    """The brushwork metadata of an exported file (kind, style names, ...); one line if it is not one."""
    return session_meta(session(path, threads=1), path)


def kind_session(path: str | Path, kinds: tuple[str, ...], what: str, threads: int | None = None,
                 arena: bool = True) -> tuple[Any, dict[str, Any]]:
    """A session and its metadata, refusing a graph of another kind with one line."""
    sess = session(path, threads, arena=arena)
    meta = session_meta(sess, path)
    if meta.get("kind") not in kinds:
        raise ModelError(f"{path} holds a '{meta.get('kind')}' export, not {what}")
    return sess, meta
