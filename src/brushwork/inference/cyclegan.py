"""A CycleGAN's ONNX export on onnxruntime, numpy and Pillow only (no torch import).

An export is two graphs, one per direction: ``FILE.onnx`` (photo -> painting) and ``FILE.reverse.onnx``
beside it. Its two "styles" are those directions; everything around the generator (sizes, tiles with
the whole photo's normalisation statistics, strength, colour, masks) is :class:`OrtFeedForward`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from brushwork.errors import ConfigError
from brushwork.inference.feedforward import OrtFeedForward
from brushwork.inference.session import kind_session
from brushwork.inference.thumbnorm import NormGraphs, OrtNormRunner

KIND = "cyclegan"


def reverse_path(path: str | Path) -> Path:
    """``monet.onnx`` -> ``monet.reverse.onnx``: the painting -> photo graph beside the photo -> painting one."""
    p = Path(path)
    return p.with_name(p.name.removesuffix(".onnx") + ".reverse.onnx")


def resolve_cyclegan(model: str | Path | None) -> Path:
    """A CycleGAN model folder: a path, or the name of a shipped cyclegan model (default: the first shipped)."""
    from brushwork.registry import shipped_models

    shipped = [m for m in shipped_models() if m.kind == KIND]
    if model is None:
        if not shipped:
            raise ConfigError("no CycleGAN model is installed: train one (brushwork train cyclegan) and pass --model")
        return shipped[0].path
    path = Path(model)
    if path.is_dir():
        return path
    match = [m.path for m in shipped if m.name == str(model)]
    if not match:
        from brushwork.errors import did_you_mean

        names = [m.name for m in shipped]
        raise ConfigError(f"--model {model} is not a CycleGAN model folder{did_you_mean(str(model), names)}"
                          + (f" (shipped: {', '.join(names)})" if names else ""))
    return match[0]


class OrtCycleGAN(OrtFeedForward):
    """Both directions of a CycleGAN export in onnxruntime sessions; the style with the larger weight
    picks the direction (a blend of the two means nothing, as for the torch model)."""

    def __init__(self, path: str | Path, threads: int | None = None, arena: bool = True) -> None:
        self.path = Path(path)
        self.session, self.meta = kind_session(self.path, (KIND,), "a CycleGAN", threads, arena)
        self.directions: dict[str, tuple[Any, NormGraphs]] = {
            self.meta["produces"]: (self.session, NormGraphs(self.path, threads))}
        other = reverse_path(self.path)
        if other.is_file():
            sess, meta = kind_session(other, (KIND,), "a CycleGAN", threads, arena)
            self.directions[meta["produces"]] = (sess, NormGraphs(other, threads))
        self.style_names = tuple(self.meta["style_names"])
        self.kind = KIND
        self.widths = tuple(self.meta.get("widths", (32, 64, 128)))
        self.norms = self.directions[self.meta["produces"]][1]

    def runner(self, weights: np.ndarray) -> OrtNormRunner:
        produces = self.style_names[int(np.argmax(weights[0]))]
        if produces not in self.directions:
            raise ConfigError(f"{self.path.name} holds only the {', '.join(self.directions)} direction (no "
                              f"{reverse_path(self.path).name} beside it)")
        session, norms = self.directions[produces]
        return OrtNormRunner(norms, {}, int(self.meta["pad_multiple"]), session)
