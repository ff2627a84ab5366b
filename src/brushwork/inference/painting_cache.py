"""What a painting costs to read, kept on disk: a painting used again in a later command skips its decode and
encoder pass (0.25-0.3 s of a one-photo ghiasi command on a 2-core CPU).

Entries are keyed by the sha256 of the painting file's bytes (a renamed or copied painting still hits, an
edited one misses) and by a tag naming what computed them (encoder file, size), so a new encoder or version
never reads an old entry. They are plain ``.npz`` arrays read with ``allow_pickle=False``: an unreadable or
foreign entry is recomputed and replaced, never executed. ``BRUSHWORK_NO_PAINTING_CACHE=1`` turns it off.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Arrays = dict[str, np.ndarray]

_digests: dict[tuple[str, int, int], str] = {}


def enabled() -> bool:
    return os.environ.get("BRUSHWORK_NO_PAINTING_CACHE", "") in ("", "0")


def file_digest(path: Path) -> str:
    """The file's sha256 (hex), remembered per path, size and mtime for this process."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return _digests[key]


def file_tag(path: Path) -> str:
    """A short id of a file that computes entries (an encoder graph): its name, size and mtime."""
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]


def cache_folder() -> Path:
    from brushwork.encoders.hub import cache_dir

    return cache_dir() / "paintings"


def cached(source: Any, tag: str, compute: Callable[[], Arrays]) -> Arrays:
    """``compute()`` for a painting file ``source``, from disk when an entry of the same bytes and ``tag``
    exists; anything but an existing file path (an image in memory, a preset) is just computed."""
    if not enabled() or not isinstance(source, (str, Path)) or not Path(source).is_file():
        return compute()
    try:
        entry = cache_folder() / f"{file_digest(Path(source))}-{tag}.npz"
    except OSError:
        return compute()
    if entry.is_file():
        try:
            with np.load(entry, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # a torn or foreign file: recompute and replace it
            pass
    out = compute()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_name(f"{entry.stem}.{os.getpid()}.part.npz")
        np.savez(tmp, **out)
        tmp.replace(entry)
    except OSError:  # a read-only cache costs time, not the result
        pass
    return out
