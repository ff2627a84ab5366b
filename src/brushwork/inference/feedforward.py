"""A trained johnson / cin / stylebank net's ONNX export on onnxruntime, numpy and Pillow only."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from brushwork.image.io import ImageInput, resize
from brushwork.inference.arrays import (
    Finish,
    OnePassResult,
    check_one_pass_options,
    pad_to,
    photo_plan,
    plan_pass,
    style_weights,
)
from brushwork.inference.session import kind_session
from brushwork.inference.thumbnorm import NormGraphs, OrtNormRunner
from brushwork.tiling import render

FEEDFORWARD_KINDS = ("johnson", "cin", "stylebank")


class OrtFeedForward:
    """The exported net (fp32 or INT8) held in an onnxruntime session: load once, stylize many photos
    (``arena`` False for one or two: :func:`brushwork.inference.session.session_from_bytes`)."""

    def __init__(self, path: str | Path, threads: int | None = None, arena: bool = True) -> None:
        self.path = Path(path)
        self.session, self.meta = kind_session(self.path, FEEDFORWARD_KINDS, "a feed-forward model", threads,
                                               arena)
        self.style_names: tuple[str, ...] = tuple(self.meta["style_names"])
        self.kind: str = self.meta["kind"]
        self.widths: tuple[int, ...] = tuple(self.meta.get("widths", (32, 64, 128)))
        self.norms = NormGraphs(self.path, threads)  # the tiled graphs, built on first use

    def runner(self, weights: np.ndarray) -> OrtNormRunner:
        """The net with these style weights, for one pass or for tiles."""
        return OrtNormRunner(self.norms, {"style_weights": np.ascontiguousarray(weights, np.float32)},
                             int(self.meta["pad_multiple"]), self.session)

    def transform(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The net's output ``(1, 3, H, W)`` in 0..1 for a photo in 0..1 (padded to the net's strides here)."""
        xp, h, w = pad_to(x, int(self.meta["pad_multiple"]))
        (y,) = self.session.run(None, {"image": xp, "style_weights": np.ascontiguousarray(weights, np.float32)})
        return np.clip(y[..., :h, :w], 0.0, 1.0)

    def stylize(self, photo: ImageInput, styles: Any = None, *, size: int | None = None, strength: float = 1.0,
                preserve_color: str | None = None, mask: ImageInput | None = None, upscale: bool = False,
                memory_limit: int | None = None, tile: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> OnePassResult:
        """One pass over ``photo``: the same controls as ``FeedForwardStylizer.stylize`` (``strength`` a
        pixel blend with the photo, luminance-only colour, a feathered mask). A large photo (or ``tile``
        px) runs in tiles normalised with the whole picture's statistics (:mod:`brushwork.tiling`)."""
        check_one_pass_options(strength, preserve_color, size)
        t0 = time.perf_counter()
        weights, chosen, notes = style_weights(self.style_names, styles)
        img, (w, h) = photo_plan(photo, size, upscale, notes)
        grid = plan_pass((w, h), self.widths, f"a {self.kind} pass", tile, memory_limit)
        finish = Finish.of((w, h), strength, preserve_color, mask, notes)
        runner = self.runner(weights) if strength > 0 else None
        out = render(resize(img, (w, h)), grid, runner, finish, notes, progress)
        return OnePassResult(out, time.perf_counter() - t0, (w, h), notes, chosen)
