"""Stroke size at print sizes: paint at a coarser scale, bring the photo's fine detail back.

A one-pass net paints strokes of a fixed size in pixels: at 8000 px they are a few pixels wide and
vanish in a print. With ``stroke_scale`` F the method runs on the photo at 1/F of the output size
(tiled too when that is still large), the result is enlarged (Lanczos) to the output size, and the
photo's own fine detail (its luminance minus the luminance of the same photo passed through the
working size) is added back, so strokes keep the size they have on a screen-sized picture while
edges and texture finer than a stroke stay sharp. The keep-the-photo ``mask`` is applied at full size.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
from PIL import Image

from brushwork.errors import ConfigError

#: largest stroke scale: beyond it the working picture is a thumbnail
MAX_STROKE_SCALE = 16.0
#: rows processed at once when the detail is put back (keeps the float copies to a band)
BAND_ROWS = 512
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def check_stroke_scale(value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and 1 <= value <= MAX_STROKE_SCALE):
        raise ConfigError(f"--stroke-scale must be between 1 and {MAX_STROKE_SCALE:g}, got {value}")


def restore_detail(painted: Image.Image, photo: Image.Image, blurred: Image.Image, amount: float = 1.0,
                   keep: np.ndarray | None = None) -> Image.Image:
    """``painted`` plus ``amount`` times the photo's luminance detail (``photo`` minus ``blurred``, both at
    the painted size), band by band; where a ``keep`` plane (0..1) is 0 the photo itself."""
    w, h = photo.size
    out = np.empty((h, w, 3), dtype=np.uint8)

    def band(img: Image.Image, y0: int, y1: int) -> np.ndarray:  # a crop: no full-size copy of any input
        return np.asarray(img.crop((0, y0, w, y1)), dtype=np.float32)

    for y0 in range(0, h, BAND_ROWS):
        y1 = min(h, y0 + BAND_ROWS)
        p, s = band(painted, y0, y1), band(photo, y0, y1)
        detail = (s - band(blurred, y0, y1)) @ LUMA
        p += amount * detail[..., None]
        if keep is not None:
            k = keep[y0:y1, :, None]
            p = k * p + (1 - k) * s
        np.clip(p + 0.5, 0, 255, out=p)
        out[y0:y1] = p.astype(np.uint8)
    return Image.fromarray(out, mode="RGB")  # (the caller drops its inputs before saving)


def stroke_scaled(method: Any, loaded: Any, photo: Any, request: Any) -> Any:
    """``method.stylize`` at 1/``request.stroke_scale`` of the output size, enlarged, the photo's detail put
    back (:func:`restore_detail`); a :class:`~brushwork.methods.registry.Result` at the full size."""
    from brushwork.image.io import fit_size, load_image, resize
    from brushwork.inference.arrays import mask_plane

    check_stroke_scale(request.stroke_scale)
    t0 = time.perf_counter()
    img = load_image(photo, what="photo")
    w, h = fit_size(img.size, request.size, allow_upscale=request.upscale)
    small = fit_size((w, h), max(32, round(max(w, h) / request.stroke_scale)))
    full = resize(img, (w, h))
    del img
    sub = dataclasses.replace(request, size=None, upscale=False, stroke_scale=None, mask=None)
    work = resize(full, small)
    r = method.stylize(loaded, work, sub)
    notes = [*r.notes, f"strokes x{request.stroke_scale:g}: painted at {small[0]}x{small[1]}, enlarged to {w}x{h} "
                       "with the photo's detail"]
    keep = mask_plane(request.mask, (w, h), notes) if request.mask is not None else None
    painted = r.image.resize((w, h), Image.Resampling.LANCZOS)
    blurred = work.resize((w, h), Image.Resampling.LANCZOS)
    del work
    out = restore_detail(painted, full, blurred, keep=keep)
    return dataclasses.replace(r, image=out, seconds=time.perf_counter() - t0, size=(w, h), notes=notes,
                               info={**r.info, "stroke_scale": request.stroke_scale})
