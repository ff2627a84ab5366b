"""A trained johnson / cin / stylebank net's ONNX export on onnxruntime, numpy and Pillow only."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from brushwork.image.io import ImageInput, resize
from brushwork.inference.arrays import (
    OnePassResult,
    blend_masked,
    check_budget,
    check_one_pass_options,
    combine_luminance,
    pad_to,
    pass_bytes,
    photo_plan,
    style_weights,
    to_array,
    to_image,
)
from brushwork.inference.session import kind_session

FEEDFORWARD_KINDS = ("johnson", "cin", "stylebank")


class OrtFeedForward:
    """The exported net (fp32 or INT8) held in an onnxruntime session: load once, stylize many photos."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session, self.meta = kind_session(self.path, FEEDFORWARD_KINDS, "a feed-forward model", threads)
        self.style_names: tuple[str, ...] = tuple(self.meta["style_names"])
        self.kind: str = self.meta["kind"]
        self.widths: tuple[int, ...] = tuple(self.meta.get("widths", (32, 64, 128)))

    def transform(self, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The net's output ``(1, 3, H, W)`` in 0..1 for a photo in 0..1 (padded to the net's strides here)."""
        xp, h, w = pad_to(x, int(self.meta["pad_multiple"]))
        (y,) = self.session.run(None, {"image": xp, "style_weights": np.ascontiguousarray(weights, np.float32)})
        return np.clip(y[..., :h, :w], 0.0, 1.0)

    def stylize(self, photo: ImageInput, styles: Any = None, *, size: int | None = None, strength: float = 1.0,
                preserve_color: str | None = None, mask: ImageInput | None = None, upscale: bool = False,
                memory_limit: int | None = None) -> OnePassResult:
        """One pass over ``photo``: the same controls as ``FeedForwardStylizer.stylize`` (``strength`` a
        pixel blend with the photo, luminance-only colour, a feathered mask)."""
        check_one_pass_options(strength, preserve_color, size)
        t0 = time.perf_counter()
        weights, chosen, notes = style_weights(self.style_names, styles)
        img, (w, h) = photo_plan(photo, size, upscale, notes)
        check_budget(pass_bytes(w, h, self.widths), f"a {self.kind} pass at {w}x{h}", memory_limit)
        x = to_array(resize(img, (w, h)))
        out = self.transform(x, weights) if strength > 0 else x
        if preserve_color == "luminance":
            out = combine_luminance(out, x)
        if strength < 1:
            out = strength * out + (1 - strength) * x
        if mask is not None:
            out = blend_masked(out, x, mask, notes)
        return OnePassResult(to_image(out), time.perf_counter() - t0, (w, h), notes, chosen)
