"""Pre- and post-processing of one-pass stylization on numpy: what the torch stylizers do with
tensors, for exported graphs run by onnxruntime in a process that never imports torch.

Arrays are ``(1, C, H, W)`` float32 in 0..1, as the exported graphs take them.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from brushwork.errors import ConfigError, ImageError, ResourceError
from brushwork.image.io import ImageInput, check_mask_shape, fit_size, load_image, resize

#: smallest photo side: the 9x9 reflection pad at full size and the 3x3 one at 1/4 size need room
MIN_INPUT = 8

#: RGB -> YIQ (Y: luminance in 0..1; I, Q: chroma), as in ``brushwork.image.color``
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)

#: the styles a one-pass net is asked for: None (its first), a name, {name: weight} or (name, weight) pairs
StyleChoice = "str | Mapping[str, float] | Sequence[tuple[str, float]] | None"


@dataclass
class OnePassResult:
    """What every one-pass stylizer returns, on torch or on onnxruntime."""

    image: Any
    seconds: float
    size: tuple[int, int]
    notes: list[str] = field(default_factory=list)
    styles: dict[str, float] = field(default_factory=dict)  # the normalised blend that was applied


def to_array(img: Image.Image) -> np.ndarray:
    """8-bit RGB PIL image -> ``(1, 3, H, W)`` float32 in 0..1."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """A float32 array in 0..1 as uint8, rounded, computed in place (``arr`` is overwritten)."""
    np.clip(arr, 0.0, 1.0, out=arr)
    arr *= 255.0
    arr += 0.5
    return arr.astype(np.uint8)


def to_image(arr: np.ndarray, inplace: bool = False) -> Image.Image:
    """``(1, 3, H, W)`` (or ``(H, W, 3)``) array in 0..1 -> 8-bit RGB PIL image (clamped, rounded like
    ``from_tensor``), with one float copy at most (none if ``inplace``, which overwrites a float32 ``arr``):
    a 48 MP output must not cost four."""
    x = arr[0] if arr.ndim == 4 else arr
    u8 = to_uint8(x if inplace and x.dtype == np.float32 else x.astype(np.float32))
    return Image.fromarray(np.ascontiguousarray(u8 if arr.ndim == 3 else u8.transpose(1, 2, 0)), mode="RGB")


def tile_array(source: np.ndarray) -> np.ndarray:
    """An ``(h, w, 3)`` uint8 crop of a photo -> ``(1, 3, h, w)`` float32 in 0..1 (what the graphs take)."""
    return np.ascontiguousarray(source.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0)


#: the statistics of a tiled pass come from the photo at this longest side (URST's thumbnail)
THUMBNAIL = 1024


def thumbnail(img: Image.Image, longest: int = THUMBNAIL) -> np.ndarray:
    """The photo at ``longest`` px (never enlarged) as ``(1, 3, h, w)``: the whole picture in one pass, whose
    normalisation statistics every tile of a tiled pass then shares."""
    return to_array(resize(img, fit_size(img.size, longest)))


def mask_plane(mask: ImageInput, size: tuple[int, int], notes: list[str]) -> np.ndarray:
    """A mask at ``size`` (w, h) as ``(H, W)`` float32 0..1, feathered so a composite has no hard edge.
    Above 16 MP it is blurred in 8 bits by Pillow (a float64 blur at print size would cost gigabytes)."""
    w, h = size
    radius = max(1, round(max(w, h) / 256))
    if w * h <= 16_000_000:
        keep, resized = load_mask(mask, size)
        keep = feather(keep, radius)[0, 0]
    else:
        from PIL import ImageFilter

        img = load_image(mask, what="mask")
        resized = img.size != tuple(size)
        if resized:
            check_mask_shape(img.size, size)
        grey = Image.fromarray((np.asarray(img, dtype=np.uint16).sum(axis=2) // 3).astype(np.uint8))
        keep = np.asarray(grey.resize(tuple(size), Image.Resampling.BILINEAR).filter(ImageFilter.BoxBlur(radius)),
                          dtype=np.float32) / np.float32(255.0)
    if resized:
        notes.append(f"mask resized to {w}x{h} to match")
    return keep


@dataclass
class Finish:
    """The pixelwise controls after a net's pass, on a whole image or on one tile of it (``box`` is where
    the tile sits, for the mask): luminance-only colour, ``strength`` (a pixel blend with the photo) and a
    feathered ``keep`` mask (white = styled). Applied per tile, a tiled output needs no full-size copy."""

    strength: float = 1.0
    preserve_color: str | None = None
    keep: np.ndarray | None = None
    #: the painting's colour (mean, covariance) and how far towards it to move the net's output (0..1)
    palette: tuple[np.ndarray, np.ndarray] | None = None
    palette_amount: float = 0.0
    _affine: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def wants_palette(self) -> bool:
        return self.palette is not None and self.palette_amount > 0 and self._affine is None

    def fit_palette(self, y: np.ndarray) -> None:
        """Fix the colour map from the net's output ``y`` (the whole picture, or its thumbnail's pass): every
        tile then gets the same map."""
        if self.palette is not None and self.palette_amount > 0:
            m, c = palette_affine(color_stats(y), self.palette, self.palette_amount)
            self._affine = (m.astype(np.float32), c.astype(np.float32))

    @classmethod
    def of(cls, size: tuple[int, int], strength: float = 1.0, preserve_color: str | None = None,
           mask: ImageInput | None = None, notes: list[str] | None = None) -> Finish:
        """The controls of a request, the mask read and feathered at ``size``."""
        keep = mask_plane(mask, size, notes if notes is not None else []) if mask is not None else None
        return cls(strength, preserve_color, keep)

    def image(self, y: np.ndarray, x: np.ndarray) -> Image.Image:
        """The finished whole picture as an 8-bit image (``y`` may be overwritten). The palette-only finish
        (ghiasi's default) of a command already on onnxruntime runs as one graph on all cores
        (:mod:`brushwork.export.finish`), the same numbers as numpy's passes up to a level of 255 here and
        there; anything else, and the torch engines, on numpy."""
        if self.wants_palette:
            self.fit_palette(y)
        if (self._affine is not None and self.preserve_color is None and self.strength >= 1 and self.keep is None
                and "onnxruntime" in sys.modules and y.ndim == 4 and y.shape[:2] == (1, 3)):
            m, c = self._affine
            (u8,) = _palette_finish().run(None, {"y": np.ascontiguousarray(y, np.float32),
                                                 "W": np.ascontiguousarray(m.reshape(3, 3, 1, 1)), "B": c})
            return Image.fromarray(u8[0], mode="RGB")
        return to_image(self(y, x), inplace=True)

    def __call__(self, y: np.ndarray, x: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        if self.wants_palette:
            self.fit_palette(y)
        if self._affine is not None:
            m, c = self._affine
            y = soft_gamut(np.einsum("ij,bjhw->bihw", m, y) + c[None, :, None, None])
        if self.preserve_color == "luminance":
            y = combine_luminance(y, x)
        if self.strength < 1:
            y = self.strength * y + (1 - self.strength) * x
        if self.keep is not None:
            k = self.keep if box is None else self.keep[box[1]:box[3], box[0]:box[2]]
            y = k * y + (1 - k) * x
        return y


@functools.cache
def _palette_finish() -> Any:
    """The session of the shipped palette-finish graph (a few ms to make, once per process). With the arena
    its steps reuse each other's freed buffers: 16 ms at 1024 px in a fresh process, 43 without (fresh pages)."""
    from brushwork.inference.session import session

    return session(Path(__file__).with_name("palette_finish.onnx"))


#: width of the soft shoulder and toe of :func:`soft_gamut`
GAMUT_KNEE = 0.08


def soft_gamut(v: np.ndarray, knee: float = GAMUT_KNEE) -> np.ndarray:
    """Values in 0..1 with the parts beyond ``knee`` of either end rolled off smoothly (tanh) instead of
    clipped: a recoloured sky keeps its gradations instead of blowing out to 255 (1.75% of channel values
    clipped to 0.003% on the held-out pairs, palette and style distances unchanged)."""
    inner = np.clip(np.asarray(v, dtype=np.float32), knee, 1.0 - knee)
    beyond = np.subtract(v, inner, dtype=np.float32)  # zero inside, where tanh leaves it zero
    np.tanh(np.divide(beyond, knee, out=beyond), out=beyond)
    beyond *= knee
    beyond += inner  # one pass of whole-array maps: ~3x faster than masked assignments at 1024 px
    return beyond


def color_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(3,)`` and covariance ``(3, 3)`` of the colours of ``(1, 3, H, W)`` float or ``(H, W, 3)`` uint8."""
    px = x[0].reshape(3, -1) if x.ndim == 4 else x.reshape(-1, 3).T
    if px.shape[1] > 1 << 18:  # an even grid of samples is as good as all of a large picture (and 10x faster
        px = px[:, :: -(-px.shape[1] // (1 << 18))]  # than drawing them at random)
    px = px.astype(np.float64) / (1.0 if x.ndim == 4 else 255.0)
    return px.mean(axis=1), np.cov(px) + np.eye(3) * 1e-5


def _sym_sqrt(c: np.ndarray, inverse: bool = False) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    w = np.clip(w, 1e-8, None) ** (-0.5 if inverse else 0.5)
    return (v * w) @ v.T


def palette_affine(src: tuple[np.ndarray, np.ndarray], dst: tuple[np.ndarray, np.ndarray],
                   amount: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(M, c)`` with ``M @ rgb + c`` moving colours of mean/covariance ``src`` ``amount`` of the way to ``dst``
    (the symmetric-square-root map of Gatys et al. 2016's colour transfer, as ``image.color.match_color``)."""
    (mu_s, cov_s), (mu_t, cov_t) = src, dst
    a = _sym_sqrt(cov_t) @ _sym_sqrt(cov_s, inverse=True)
    m = (1 - amount) * np.eye(3) + amount * a
    return m, amount * (mu_t - a @ mu_s)


def combine_luminance(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The stylized image's luminance with the content's chroma (I, Q), back in RGB (Gatys 2016)."""
    y = np.einsum("j,bjhw->bhw", RGB_TO_YIQ[0].astype(np.float32), stylized)[:, None]
    iq = np.einsum("ij,bjhw->bihw", RGB_TO_YIQ[1:].astype(np.float32), content)
    out = np.einsum("ij,bjhw->bihw", YIQ_TO_RGB.astype(np.float32), np.concatenate([y, iq], axis=1))
    return np.clip(out, 0.0, 1.0)


def load_mask(src: ImageInput, size: tuple[int, int], what: str = "mask") -> tuple[np.ndarray, bool]:
    """A mask as ``(1, 1, H, W)`` in 0..1 (the image's mean over RGB), resized to ``size`` (w, h) if it differs."""
    img = load_image(src, what=what)
    resized = img.size != tuple(size)
    if resized:
        check_mask_shape(img.size, size, what)
    m = np.asarray(img, dtype=np.float32).mean(axis=2) / 255.0
    if resized:
        m = np.asarray(Image.fromarray(m, mode="F").resize(tuple(size), Image.Resampling.BILINEAR))
    return np.clip(m, 0.0, 1.0)[None, None].astype(np.float32), resized


def feather(mask: np.ndarray, radius: int) -> np.ndarray:
    """Soften a mask's edge with a ``2r+1`` box blur (edges replicated), so composites have no hard seam."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    m = np.pad(mask[0, 0].astype(np.float64), radius, mode="edge")
    for axis in (0, 1):  # a running sum along each axis: O(pixels) whatever the radius
        c = np.cumsum(m, axis=axis)
        c = np.concatenate([np.zeros_like(c.take([0], axis=axis)), c], axis=axis)
        n = c.shape[axis]
        m = (c.take(range(k, n), axis=axis) - c.take(range(0, n - k), axis=axis)) / k
    return m[None, None].astype(np.float32)


def blend_masked(out: np.ndarray, base: np.ndarray, mask: ImageInput, notes: list[str]) -> np.ndarray:
    """``out`` where the (feathered) mask is white, ``base`` where it is black."""
    h, w = out.shape[-2:]
    keep, resized = load_mask(mask, (w, h))
    if resized:
        notes.append(f"mask resized to {w}x{h} to match")
    keep = feather(keep, max(1, round(max(w, h) / 256)))
    return keep * out + (1 - keep) * base


def pad_to(x: np.ndarray, multiple: int) -> tuple[np.ndarray, int, int]:
    """Reflect-pad the bottom and right to a multiple of ``multiple`` (the net's strides); also the size."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
    return np.ascontiguousarray(x), h, w


def pass_bytes(width: int, height: int, widths: Sequence[int] = (32, 64, 128), itemsize: int = 4) -> int:
    """Peak bytes of one no-grad pass of a transformer net: the last upsampling stage holds the 1/2-res
    channels at full size, its conv output, and the norm's float32 copies of it."""
    c1, c2 = widths[0], widths[1]
    return int(width * height * ((c2 + 2 * c1) * itemsize + c1 * 4 * 2 + 3 * 4 * 6) + (200 << 20))


def available_ram() -> int:
    """The memory this process may still use (:func:`brushwork.image.io.available_memory`: ``MemAvailable``
    within any container limit)."""
    from brushwork.image.io import available_memory

    return available_memory()


def memory_budget(limit: int | None = None, available: int | None = None) -> int:
    """Bytes a job may use: ``limit``, else 90% of the ``available`` memory (by default the machine's)."""
    return limit if limit is not None else int((available if available is not None else available_ram()) * 0.9)


def check_budget(estimate: int, what: str, limit: int | None = None, available: int | None = None,
                 where: str = "cpu") -> None:
    """Refuse clearly, before any work, when ``estimate`` bytes exceed ``limit`` (default: 90% of the
    ``available`` memory, by default the machine's)."""
    budget = memory_budget(limit, available)
    if estimate > budget:
        raise ResourceError(f"{what} needs about {estimate / 2**30:.1f} GiB but only {budget / 2**30:.1f} GiB is "
                            f"available on {where}: use a smaller --size")


def price_photo(photo: ImageInput, size: int | None, upscale: bool, available: int | None = None) -> None:
    """Refuse in one line, from a file's header and before decoding it, a photo whose decode plus the least
    any stylization of it holds (a tiled one: :data:`brushwork.tiling.TILED_BYTES_PER_PIXEL`) cannot fit."""
    if not isinstance(photo, (str, os.PathLike)):
        return
    from brushwork.image.io import image_size
    from brushwork.tiling import TILED_BYTES_PER_PIXEL

    sw, sh = image_size(photo, what="photo")
    tw, th = fit_size((sw, sh), size, allow_upscale=upscale)
    check_budget(sw * sh * 4 + tw * th * TILED_BYTES_PER_PIXEL,
                 f"a {tw}x{th} picture from a {sw}x{sh} photo, even in tiles,", available=available)


def photo_plan(photo: ImageInput, size: int | None, upscale: bool, notes: list[str]) -> tuple[Image.Image,
                                                                                          tuple[int, int]]:
    """The decoded photo and the (w, h) it is stylized at (``size`` = longest side; kept unless ``upscale``),
    after the size checks every transformer-net pass makes (the memory check comes next, the resize last)."""
    price_photo(photo, size, upscale)
    img = load_image(photo, what="photo")
    w, h = fit_size(img.size, size, allow_upscale=upscale)
    if size is not None and size > max(img.size) and not upscale:
        notes.append(f"photo is {img.size[0]}x{img.size[1]}; kept its size (allow upscaling to enlarge)")
    if min(w, h) < MIN_INPUT:
        raise ImageError(f"photo is {w}x{h}: too small (min {MIN_INPUT} px on each side)")
    return img, (w, h)


def check_blend_request(styles: Sequence[Any], weights: Sequence[float] | None, masks: Sequence[Any] | None,
                        strength: float, preserve_color: str | None, size: int | None, blend: str
                        ) -> tuple[list[float], list[Any], list[int]]:
    """The checks of an arbitrary-style request (ghiasi); its weights, masks and unmasked style indices."""
    if not 0 <= strength <= 1:
        raise ConfigError(f"strength must be between 0 and 1, got {strength}")
    if preserve_color not in (None, "luminance"):
        raise ConfigError(f"preserve-color for ghiasi is 'luminance', got '{preserve_color}'")
    if size is not None and size < 32:
        raise ConfigError(f"size must be at least 32 px, got {size}")
    if not styles:
        raise ConfigError("at least one painting is needed")
    weights = [float(w) for w in weights] if weights is not None else [1.0] * len(styles)
    masks = list(masks) if masks is not None else [None] * len(styles)
    if len(weights) != len(styles) or len(masks) != len(styles):
        raise ConfigError("give one weight and one mask (or None) per style")
    check_weights(weights)
    unmasked = [i for i, m in enumerate(masks) if m is None]
    if blend == "slerp" and len(unmasked) < 2:
        raise ConfigError("--blend slerp interpolates between styles: give at least two unmasked paintings")
    return weights, masks, unmasked


def style_weights(names: Sequence[str], styles: Any) -> tuple[np.ndarray, dict[str, float], list[str]]:
    """``(1, n_styles)`` convex weights for a style choice, the normalised choice, and notes.

    ``styles``: None (the first style), a name, ``{name: weight}`` or ``[(name, weight), ...]``
    (repeated names add up). Weights must be >= 0, not all 0; they are scaled to sum to 1 so a
    blend stays inside the styles the net learned.
    """
    from brushwork.errors import did_you_mean

    names = list(names)
    notes: list[str] = []
    if styles is None:
        if len(names) > 1:
            notes.append(f"this model holds {len(names)} styles ({', '.join(names)}); used '{names[0]}'")
        pairs: list[tuple[str, Any]] = [(names[0], 1.0)]
    elif isinstance(styles, str):
        pairs = [(styles, 1.0)]
    elif isinstance(styles, Mapping):
        pairs = [(str(k), v) for k, v in styles.items()]
    else:
        try:
            pairs = [(str(k), v) for k, v in styles]
        except (TypeError, ValueError) as exc:
            raise ConfigError("styles must be a name, {name: weight} or a list of (name, weight) pairs") from exc
    if not pairs:
        raise ConfigError(f"no style chosen: name one of {', '.join(names)}")
    w = np.zeros((1, len(names)), dtype=np.float64)
    for name, weight in pairs:
        if name not in names:
            raise ConfigError(f"unknown style '{name}' for this model{did_you_mean(name, names)} "
                              f"(it holds: {', '.join(names)})")
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise ConfigError(f"style weight for '{name}' must be a number, got {weight!r}") from None
        if not math.isfinite(weight) or weight < 0:
            raise ConfigError(f"style weight for '{name}' must be a number >= 0, got {weight}")
        w[0, names.index(name)] += weight
    total = float(w.sum())
    if total <= 0:
        raise ConfigError("style weights sum to 0: give at least one style a positive weight")
    w = w / total
    return w.astype(np.float32), {n: float(v) for n, v in zip(names, w[0]) if v > 0}, notes


def check_one_pass_options(strength: float, preserve_color: str | None, size: int | None) -> None:
    """The checks every one-pass stylizer makes before any work."""
    if not 0 <= strength <= 1:
        raise ConfigError(f"strength must be between 0 and 1, got {strength}")
    if preserve_color == "match":
        raise ConfigError("preserve-color 'match' recolours the painting, which a feed-forward net has baked in: "
                          "use 'luminance'")
    if preserve_color not in (None, "luminance"):
        raise ConfigError(f"preserve-color must be 'luminance', got '{preserve_color}'")
    if size is not None and size < 32:
        raise ConfigError(f"size must be at least 32 px, got {size}")


def check_weights(weights: Sequence[float]) -> None:
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError("style weights must be numbers >= 0 that sum to a positive number")


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation of two embeddings ``(1, E)``: the direction moves along the great
    circle, the length linearly (so a blend keeps the styles' magnitude instead of shrinking it)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = max(np.linalg.norm(a), 1e-8), max(np.linalg.norm(b), 1e-8)
    ua, ub = a / na, b / nb
    omega = math.acos(float(np.clip((ua * ub).sum(), -1 + 1e-7, 1 - 1e-7)))
    if omega < 1e-4:
        u = (1 - t) * ua + t * ub
    else:
        u = (math.sin((1 - t) * omega) * ua + math.sin(t * omega) * ub) / math.sin(omega)
    return u * ((1 - t) * na + t * nb)


BLENDS = ("linear", "slerp")


def blend_embeddings(embeddings: Sequence[np.ndarray], weights: Sequence[float], mode: str = "linear") -> np.ndarray:
    """One embedding from several by weight: their weighted mean, or successive slerps (each new
    style joins the blend so far with its share of the total weight)."""
    if mode not in BLENDS:
        raise ConfigError(f"blend must be one of {', '.join(BLENDS)}, got '{mode}'")
    if len(embeddings) != len(weights) or not embeddings:
        raise ConfigError("give one weight per style")
    check_weights(weights)
    if mode == "slerp" and len(embeddings) < 2:
        raise ConfigError("--blend slerp interpolates between styles: give at least two")
    es = [np.asarray(e, dtype=np.float64) for e in embeddings]
    total = float(sum(weights))
    if mode == "linear":
        return sum(w / total * e for w, e in zip(weights, es))
    acc, acc_w = None, 0.0
    for e, w in zip(es, weights):
        if w <= 0:
            continue
        acc = e if acc is None else slerp(acc, e, w / (acc_w + w))
        acc_w += w
    return acc


def plan_pass(size: tuple[int, int], widths: Sequence[int], what: str, tile: int | None,
              memory_limit: int | None, itemsize: int = 4, available: int | None = None,
              where: str = "cpu") -> Any:
    """The tiles (:class:`brushwork.tiling.TileGrid`) of a transformer-net pass at ``size``, or None for one
    pass, after the memory check of whichever it is (a tiled job prices one tile plus the whole picture)."""
    from brushwork.tiling import plan_tiles, tiled_cost

    w, h = size

    def cost(a: int, b: int) -> int:
        return pass_bytes(a, b, widths, itemsize)

    grid = plan_tiles(w, h, tile, cost, memory_budget(memory_limit, available))
    check_budget(tiled_cost(grid, cost) if grid is not None else cost(w, h),
                 f"{what} at {w}x{h}" + (f" in {len(grid)} tiles" if grid is not None else ""), memory_limit,
                 available, where)
    return grid
