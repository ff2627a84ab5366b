"""Where the ONNX exports of trained folders are cached, and making one on first use."""

from __future__ import annotations

import hashlib
from pathlib import Path

from brushwork import __version__
from brushwork.errors import ConfigError

#: bumped whenever :mod:`brushwork.export.graph` gains a rewrite (2: 16-channel-padded convolutions)
GRAPH_REVISION = 2


def cache_path(folder: Path, tag: str) -> Path:
    """The cached export of a trained folder, keyed by its weights' hash, this version and the graph rewrites'
    revision (an export made before a rewrite is remade, not run slower)."""
    from brushwork.encoders.hub import cache_dir

    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:16]
    return cache_dir() / "onnx" / f"{tag}-{digest}-{__version__}-g{GRAPH_REVISION}.onnx"


def exported(folder: str | Path, tag: str) -> Path:
    """The fp32 export of ``folder`` (``tag``: ff, ghiasi), made once with torch and cached; without
    torch, a cached export still runs and a missing one is one line."""
    import importlib.util

    folder = Path(folder)
    out = cache_path(folder, tag)
    companions_ok = True
    if tag == "ghiasi":
        from brushwork.inference.ghiasi import companion_paths

        companions_ok = all(p.is_file() for p in companion_paths(out))
    if out.is_file() and companions_ok:
        return out
    if importlib.util.find_spec("torch") is None:
        raise ConfigError(f"--engine onnx exports {folder.name} with torch on its first use, and torch is not "
                          "installed: use --engine int8 (shipped models) or install torch once")
    from brushwork.export import onnx as export

    if tag == "ghiasi":
        export.export_ghiasi(folder, out)
    else:
        export.export_feedforward(folder, out)
    return out
