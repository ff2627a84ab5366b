"""Any size in tiles of one size, without seams (the geometry and the blending; no torch).

A photo too large for one pass is cut into overlapping tiles. Each tile is run with ``pad`` pixels of
context around it (the net sees past its edge, so border effects stay outside the part kept), and
neighbouring tiles overlap by ``overlap`` pixels where their outputs are cross-faded with linear
ramps. The 1-D weights of a row (and of a column) of tiles sum to exactly 1 at every pixel, so the
2-D weights, their outer products, are a partition of unity: no weight map is stored and a flat area
stays flat across a boundary. What makes tiles agree in *style* (normalisation statistics of the
whole image, as in URST: Chen et al., AAAI 2022, "Towards Ultra-Resolution Neural Style Transfer via
Thumbnail Instance Normalization") is each method's part; this module only cuts and joins.

Arrays may be numpy arrays or torch tensors ``(..., H, W)``: only slicing and arithmetic are used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from brushwork.errors import ConfigError

#: tile side (pixels of output per tile, before overlap) when tiling is automatic
DEFAULT_TILE = 1024
#: context each tile is run with on every side (URST uses 32 at 1000 px tiles); a net's receptive field
#: beyond it only changes pixels that the cross-fade then mostly hides
DEFAULT_PAD = 32
#: width of the cross-fade between neighbouring tiles
DEFAULT_OVERLAP = 64
#: smallest tile: below this the context and overlap would be most of every pass
MIN_TILE = 128


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the fewest equal windows of at most ``tile`` px covering ``[0, length)``, neighbours
    overlapping by ``overlap`` px (give or take one), spread evenly (one window when it fits). The windows
    shrink to fit rather than overlap more: no pixel is computed more often than the cross-fade needs."""
    if length <= tile:
        return [(0, length)]
    n = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, math.ceil((length + (n - 1) * overlap) / n))
    step = (length - size) / (n - 1)
    return [(round(i * step), round(i * step) + size) for i in range(n)]


def ramps(windows: list[tuple[int, int]], length: int) -> list[np.ndarray]:
    """Per window, float32 weights over its pixels: 1 inside, linear ramps where it overlaps a
    neighbour, normalised so that at every position the windows covering it sum to 1."""
    raw = []
    for i, (s, e) in enumerate(windows):
        w = np.ones(e - s, dtype=np.float64)
        pos = np.arange(s, e) + 0.5
        if i > 0 and windows[i - 1][1] > s:  # fade in over the overlap with the previous window
            w = np.minimum(w, (pos - s) / (windows[i - 1][1] - s))
        if i + 1 < len(windows) and windows[i + 1][0] < e:  # fade out over the next one
            w = np.minimum(w, (e - pos) / (e - windows[i + 1][0]))
        raw.append(w)
    total = np.zeros(length, dtype=np.float64)
    for (s, e), w in zip(windows, raw):
        total[s:e] += w
    return [(w / total[s:e]).astype(np.float32) for (s, e), w in zip(windows, raw)]


@dataclass(frozen=True)
class Tile:
    """One tile: ``box`` (x0, y0, x1, y1) is the output it contributes to; ``context`` the larger box it
    is run on (clamped to the image); ``wx``/``wy`` its cross-fade weights along ``box``."""

    index: int
    box: tuple[int, int, int, int]
    context: tuple[int, int, int, int]
    wx: np.ndarray
    wy: np.ndarray

    def crop(self, y: Any) -> Any:
        """The ``box`` part of an output computed on ``context``."""
        x0, y0, x1, y1 = self.box
        cx0, cy0 = self.context[:2]
        return y[..., y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]

    def weights(self) -> np.ndarray:
        """``(h, w)`` float32 weights of this tile's ``box`` (their outer product)."""
        return self.wy[:, None] * self.wx[None, :]


@dataclass(frozen=True)
class TileGrid:
    """Tiles over a ``width`` x ``height`` image."""

    width: int
    height: int
    tile: int = DEFAULT_TILE
    pad: int = DEFAULT_PAD
    overlap: int | None = None  # None: DEFAULT_OVERLAP, at most a quarter of the tile
    #: contexts start on multiples of this (a net's total stride), so every tile samples the grid that one
    #: pass over the whole image would: its strided features are the same, not shifted copies
    align: int = 1

    def __post_init__(self) -> None:
        if self.overlap is None:
            object.__setattr__(self, "overlap", min(DEFAULT_OVERLAP, self.tile // 4))
        check_tile(self.tile, self.pad, self.overlap)

    @property
    def columns(self) -> list[tuple[int, int]]:
        return spans(self.width, self.tile, self.overlap)

    @property
    def rows(self) -> list[tuple[int, int]]:
        return spans(self.height, self.tile, self.overlap)

    def __len__(self) -> int:
        return len(self.columns) * len(self.rows)

    def __iter__(self) -> Iterator[Tile]:
        cols, rows = self.columns, self.rows
        wxs, wys = ramps(cols, self.width), ramps(rows, self.height)
        p = self.pad
        for j, ((y0, y1), wy) in enumerate(zip(rows, wys)):
            for i, ((x0, x1), wx) in enumerate(zip(cols, wxs)):
                a = self.align
                context = (max(0, x0 - p) // a * a, max(0, y0 - p) // a * a, min(self.width, x1 + p),
                           min(self.height, y1 + p))
                yield Tile(j * len(cols) + i, (x0, y0, x1, y1), context, wx, wy)

    def largest_context(self) -> tuple[int, int]:
        """``(w, h)`` of the largest tile pass (what a memory check should price)."""
        cw = min(self.width, self.tile + 2 * self.pad + self.align - 1)
        ch = min(self.height, self.tile + 2 * self.pad + self.align - 1)
        return cw, ch


def check_tile(tile: int, pad: int = DEFAULT_PAD, overlap: int | None = None) -> None:
    """One line for a tile size that cannot work."""
    if tile < MIN_TILE:
        raise ConfigError(f"--tile {tile}: tiles must be at least {MIN_TILE} px")
    if tile <= 2 * pad:
        raise ConfigError(f"--tile {tile} is not larger than twice the context padding ({pad} px each side)")
    if overlap is not None and overlap >= tile // 2:
        raise ConfigError(f"tile overlap {overlap} px must be under half the tile ({tile} px)")


def needs_tiles(width: int, height: int, tile: int | None, threshold: int = DEFAULT_TILE * 2) -> bool:
    """Whether a ``width`` x ``height`` pass runs in tiles: ``tile`` given (0 = never) forces it when the
    image is larger than one tile; otherwise automatic above ``threshold`` px on the longest side."""
    if tile == 0:
        return False
    if tile is not None:
        return max(width, height) > tile
    return max(width, height) > threshold


#: bytes per output pixel a tiled job holds besides its tile pass: the photo (uint8), the float32
#: accumulator, the uint8 result, a float32 mask plane
TILED_BYTES_PER_PIXEL = 3 + 12 + 3 + 4


def plan_tiles(width: int, height: int, tile: int | None, pass_cost: Callable[[int, int], int],
               budget: int) -> TileGrid | None:
    """The tiles a ``width`` x ``height`` one-pass job runs in, or None for one pass: ``tile`` 0 never
    tiles, a size forces tiles of it, None tiles above :func:`needs_tiles`'s threshold or when one pass
    (``pass_cost(w, h)`` bytes) would not fit ``budget``."""
    if tile == 0:
        return None
    if needs_tiles(width, height, tile):
        return TileGrid(width, height, tile or DEFAULT_TILE)
    if tile is not None:
        check_tile(tile)
        return None
    if pass_cost(width, height) <= budget:
        return None
    # one pass would not fit: the largest tile (halving from the default) whose job does
    size = min(DEFAULT_TILE, max(MIN_TILE, (max(width, height) + 1) // 2))
    grid = TileGrid(width, height, size)
    while size > MIN_TILE and tiled_cost(grid, pass_cost) > budget:
        size = max(MIN_TILE, size // 2)
        grid = TileGrid(width, height, size)
    return grid


def tiled_cost(grid: TileGrid, pass_cost: Callable[[int, int], int]) -> int:
    """Peak bytes of a tiled job: its largest tile pass plus what the whole picture holds."""
    return pass_cost(*grid.largest_context()) + grid.width * grid.height * TILED_BYTES_PER_PIXEL


#: per norm layer (mean, variance) of its input, float64 ``(C,)``: what a tile is normalised with
NormStats = list[tuple[np.ndarray, np.ndarray]]
Finisher = Callable[[np.ndarray, np.ndarray, tuple[int, int, int, int]], np.ndarray]


def crop_array(source: Any, box: tuple[int, int, int, int]) -> np.ndarray:
    """``(h, w, 3)`` uint8 of ``box`` from an array or a PIL image (cropped, so no full-size copy is made)."""
    x0, y0, x1, y1 = box
    if isinstance(source, np.ndarray):
        return source[y0:y1, x0:x1]
    return np.asarray(source.crop(box).convert("RGB"))


def stylize_tiled(source: Any, grid: TileGrid, run: Callable[[np.ndarray, Tile], np.ndarray],
                  finish: Finisher | None = None,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The stylized picture ``(H, W, 3)`` float32 of a photo ``source`` (a PIL image, or ``(H, W, 3)`` uint8), tile
    by tile:
    ``run`` maps a tile's context ``(1, 3, h, w)`` in 0..1 to the net's output of the same size; ``finish``
    (the pixelwise controls) then sees the kept box of output and photo, and the box's place."""
    from brushwork.inference.arrays import tile_array

    acc = np.zeros((grid.height, grid.width, 3), dtype=np.float32)
    total = len(grid)
    for tile in grid:
        x = tile_array(crop_array(source, tile.context))
        y, xb = tile.crop(run(x, tile)), tile.crop(x)
        if finish is not None:
            y = finish(y, xb, tile.box)
        x0, y0, x1, y1 = tile.box
        acc[y0:y1, x0:x1] += y[0].transpose(1, 2, 0) * tile.weights()[:, :, None]
        if progress is not None:
            progress(tile.index + 1, total)
    return acc


class NormRunner:
    """How a method's net runs on tiles that share the whole picture's normalisation statistics.

    ``run(x, box)``: one ordinary pass (each norm with its own statistics) over the picture or the part of
    it at ``box``; ``measure(x)``: the statistics of every norm of such a pass over ``x`` (the thumbnail);
    ``apply(x, stats, box)``: the output on the tile whose context is ``box`` (x0, y0, x1, y1: where
    region masks are read), normalised with ``stats``. (Pooling the tiles' own
    statistics instead, or after the thumbnail's, measured worse: 14 dB from the one full-size pass
    against the thumbnail's 21 dB at 2048 px, see benchmarks/results/tiling.md.)"""

    def run(self, x: Any, box: tuple[int, int, int, int] | None = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def measure(self, x: Any) -> Any:  # pragma: no cover - each runner implements it (NormStats, or a list)
        raise NotImplementedError

    def apply(self, x: Any, stats: Any, box: tuple[int, int, int, int] | None = None) -> Any:  # pragma: no cover
        raise NotImplementedError


def render(img: Any, grid: TileGrid | None, runner: NormRunner | None, finish: Any, notes: list[str],
           progress: Callable[[int, int], None] | None = None) -> Any:
    """A PIL photo (already at its output size) stylized by ``runner`` (None: the photo itself, e.g. at
    strength 0) in one pass, or in ``grid``'s tiles; ``finish`` (the pixelwise controls,
    :class:`brushwork.inference.arrays.Finish`) applied to the whole or per tile. A PIL image."""
    from brushwork.inference.arrays import to_array, to_image

    if grid is not None:
        return tiled_image(img, grid, runner, finish, notes, progress)
    x = to_array(img)
    y = runner.run(x) if runner is not None else x
    if hasattr(finish, "image"):  # a Finish: it may make the picture faster than a pass then to_image
        return finish.image(y, x)
    return to_image(finish(y, x) if finish is not None else y, inplace=True)


def tiled_image(img: Any, grid: TileGrid, runner: NormRunner | None, finish: Finisher | None, notes: list[str],
                progress: Callable[[int, int], None] | None = None) -> Any:
    """:func:`render` in tiles that share the statistics of the photo's thumbnail."""
    from brushwork.inference.arrays import THUMBNAIL, thumbnail, to_uint8

    if runner is None:
        def run(x: np.ndarray, tile: Tile) -> np.ndarray:
            return x
    else:
        small = thumbnail(img)
        stats = runner.measure(small)
        if getattr(finish, "wants_palette", False):  # one colour map for every tile, from the thumbnail's pass
            finish.fit_palette(runner.run(small))

        def run(x: np.ndarray, tile: Tile) -> np.ndarray:
            return runner.apply(x, stats, tile.context)

        notes.append(f"{grid.width}x{grid.height} in {len(grid)} tiles of up to {grid.tile} px (normalised with "
                     f"the statistics of a {min(THUMBNAIL, max(img.size))} px thumbnail)")
    acc = stylize_tiled(img, grid, run, finish, progress)
    u8 = to_uint8(acc)
    del acc  # the float accumulator goes before the picture is made: never both at full size
    return Image.fromarray(u8, mode="RGB")
