"""CycleGAN generators and discriminators (Zhu, Park, Isola & Efros 2017, "Unpaired Image-to-Image
Translation using Cycle-Consistent Adversarial Networks"), and a stylizer that runs a trained pair.

A CycleGAN learns a painter's style from a *collection* (hundreds of paintings), not from one
painting: G turns photos into paintings, F paintings into photos, each judged by a patch
discriminator and tied together by the cycle loss ``|F(G(x)) - x|``
(:mod:`brushwork.training.cyclegan`). A model folder holds both generators, so one shipped
model paints photos (style ``monet``) and, reversed, turns paintings back into photos
(style ``photo``).

Generators (instance norm without affine, as in the paper; reflection padding so borders carry
no frame):

- ``resnet``: Johnson's layout as the paper uses it: 7x7 conv, two stride-2 downsamplings,
  6 (128 px) or 9 (256 px) residual blocks, two upsamplings, 7x7 conv, tanh.
- ``unet``: the pix2pix encoder-decoder with skip connections (4x4 stride-2 convs, LeakyReLU
  0.2 down, ReLU up), ``depth`` downsamplings (8 for 256 px crops, 7 for 128 px).

Upsampling is nearest 2x + 3x3 conv by default ("resize-convolution", Odena et al. 2016) instead
of the paper's transposed convolutions, which leave checkerboard patterns; ``upsample="transposed"``
gives the paper's layer. Nets work in [-1, 1] inside (tanh output, as trained); :class:`CycleGANNet`
takes and returns RGB in 0..1 like every brushwork net.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import BrushworkError, ConfigError, ImageError, ModelError
from brushwork.image.io import ImageInput
from brushwork.inference.cyclegan import KIND
from brushwork.methods.feedforward import FeedForwardResult, FeedForwardStylizer, StyleChoice
from brushwork.methods.layers import NearestUpsample, ReflectionPad
from brushwork.pretrained import config_fields, load_weights, read_config, save_folder

MODEL_FORMAT = 1
GENERATORS = ("resnet", "unet")
UPSAMPLES = ("resize", "transposed")


@dataclass
class CycleGANConfig:
    """Shape of both generators and the names of their target domains.

    ``ngf``: channels of the first layer (the paper's 64; 16-32 for CPU training). ``n_blocks``:
    residual blocks of the resnet generator. ``depth``: downsamplings of the unet generator (its
    input must be a multiple of ``2**depth``, which :class:`CycleGANNet` pads to). ``names``: what
    each generator produces, ``(G's target, F's target)`` = ``("monet", "photo")``.
    """

    generator: str = "resnet"
    ngf: int = 64
    n_blocks: int = 9
    depth: int = 8
    upsample: str = "resize"
    names: tuple[str, ...] = ("painting", "photo")
    format: int = MODEL_FORMAT

    def __post_init__(self) -> None:
        self.names = tuple(str(n) for n in self.names)
        if self.generator not in GENERATORS:
            raise ConfigError(f"generator must be one of {', '.join(GENERATORS)}, got '{self.generator}'")
        if self.upsample not in UPSAMPLES:
            raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLES)}, got '{self.upsample}'")
        if self.ngf < 1 or self.n_blocks < 0 or not 1 <= self.depth <= 10:
            raise ConfigError(f"need ngf >= 1, blocks >= 0 and depth 1..10, got {self.ngf}, {self.n_blocks}, "
                              f"{self.depth}")
        if len(self.names) != 2 or len(set(self.names)) != 2:
            raise ConfigError(f"names must be two different domain names, got {list(self.names)}")

    @property
    def multiple(self) -> int:
        """Input sides must be a multiple of this (the downsamplings' total stride)."""
        return 4 if self.generator == "resnet" else 2 ** self.depth

    @property
    def widths(self) -> tuple[int, int, int]:
        """Channels at full, 1/2 and 1/4 resolution (what the memory estimate of a pass needs)."""
        return self.ngf, 2 * self.ngf, 4 * self.ngf

    @property
    def kind(self) -> str:
        return KIND


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels, affine=False)


def _up(cin: int, cout: int, mode: str, bias: bool = False) -> list[nn.Module]:
    """2x upsampling to ``cout`` channels: resize-convolution, or the paper's transposed conv."""
    if mode == "transposed":
        return [nn.ConvTranspose2d(cin, cout, 3, 2, padding=1, output_padding=1, bias=bias)]
    return [NearestUpsample(), ReflectionPad(1), nn.Conv2d(cin, cout, 3, bias=bias)]


class ResnetBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ReflectionPad(1), nn.Conv2d(channels, channels, 3, bias=False), _norm(channels),
                                  nn.ReLU(True), ReflectionPad(1), nn.Conv2d(channels, channels, 3, bias=False),
                                  _norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """``(B, 3, H, W)`` in [-1, 1] -> same shape in [-1, 1]; H and W multiples of 4."""

    def __init__(self, ngf: int = 64, n_blocks: int = 9, upsample: str = "resize") -> None:
        super().__init__()
        layers: list[nn.Module] = [ReflectionPad(3), nn.Conv2d(3, ngf, 7, bias=False), _norm(ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2 ** i
            layers += [ReflectionPad(1), nn.Conv2d(c, 2 * c, 3, stride=2, bias=False), _norm(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            layers += [*_up(c, c // 2, upsample), _norm(c // 2), nn.ReLU(True)]
        layers += [ReflectionPad(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _UnetLevel(nn.Module):
    """One level of the U-Net: down, the inner levels, up, then the skip (concatenated)."""

    def __init__(self, outer: int, inner: int, sub: nn.Module | None, upsample: str, *, outermost: bool = False,
                 cin: int | None = None) -> None:
        super().__init__()
        cin = outer if cin is None else cin
        down: list[nn.Module] = [] if outermost else [nn.LeakyReLU(0.2, True)]
        down += [ReflectionPad(1), nn.Conv2d(cin, inner, 4, stride=2, bias=outermost or sub is None)]
        if not outermost and sub is not None:
            down.append(_norm(inner))
        self.down = nn.Sequential(*down)
        self.sub = sub
        up_in = inner if sub is None else 2 * inner
        cout = 3 if outermost else outer
        up: list[nn.Module] = [nn.ReLU(True), *_up(up_in, cout, upsample, bias=outermost)]
        up.append(nn.Tanh() if outermost else _norm(cout))
        self.up = nn.Sequential(*up)
        self.outermost = outermost

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(x)
        if self.sub is not None:
            y = self.sub(y)
        y = self.up(y)
        return y if self.outermost else torch.cat([x, y], 1)


class UnetGenerator(nn.Module):
    """pix2pix's U-Net: ``depth`` 4x4 stride-2 downsamplings (channels ngf, 2, 4, then 8x ngf) with each
    level's input concatenated to its output; ``(B, 3, H, W)`` in [-1, 1], H and W multiples of 2**depth."""

    def __init__(self, ngf: int = 64, depth: int = 8, upsample: str = "resize") -> None:
        super().__init__()
        widths = [ngf * min(2 ** i, 8) for i in range(depth)]  # channels after each downsampling
        level: nn.Module | None = None
        for i in range(depth - 1, 0, -1):
            level = _UnetLevel(widths[i - 1], widths[i], level, upsample)
        self.model = _UnetLevel(3, widths[0], level, upsample, outermost=True, cin=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def build_generator(config: CycleGANConfig) -> nn.Module:
    if config.generator == "unet":
        return UnetGenerator(config.ngf, config.depth, config.upsample)
    return ResnetGenerator(config.ngf, config.n_blocks, config.upsample)


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN: three 4x4 stride-2 convs and one stride-1 (ndf, 2, 4, 8x ndf), then a 1-channel
    map; each output judges one 70x70 patch as real or fake (LSGAN targets 1 and 0)."""

    def __init__(self, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for i in range(1, n_layers + 1):
            c_next = ndf * min(2 ** i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(c, c_next, 4, stride, 1, bias=False), _norm(c_next), nn.LeakyReLU(0.2, True)]
            c = c_next
        layers.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def receptive_field(n_layers: int = 3) -> int:
    """The patch size one discriminator output sees (70 for the default three layers)."""
    rf = 1
    for stride in [1, 1] + [2] * n_layers:  # from the output back: the last two convs are stride 1
        rf = rf * stride + (4 - stride)
    return rf


class CycleGANNet(nn.Module):
    """Both generators of a trained CycleGAN; photo ``(B, 3, H, W)`` in 0..1 -> translated image in 0..1.

    ``style_weights`` ``(B or 1, 2)`` (what a feed-forward stylizer passes) picks the direction: the
    column of ``config.names`` with the larger weight (a blend of directions means nothing).
    """

    def __init__(self, config: CycleGANConfig | None = None) -> None:
        super().__init__()
        self.config = config or CycleGANConfig()
        self.g_ab = build_generator(self.config)  # photo -> painting
        self.g_ba = build_generator(self.config)  # painting -> photo

    @property
    def style_names(self) -> tuple[str, ...]:
        return self.config.names

    def generator(self, style_weights: torch.Tensor | None) -> nn.Module:
        reverse = style_weights is not None and float(style_weights[0, 1]) > float(style_weights[0, 0])
        return self.g_ba if reverse else self.g_ab

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        h, w = x.shape[-2:]
        if min(h, w) < 8:
            raise ImageError(f"image is {w}x{h}: too small for the CycleGAN generator (min 8 px)")
        m = self.config.multiple
        ph, pw = (-h) % m, (-w) % m
        y = x * 2 - 1
        if ph or pw:  # reflection needs the pad smaller than the side; a tiny photo in a deep U-Net replicates
            y = F.pad(y, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
        return self.forward_padded(y, style_weights, signed=True)[..., :h, :w]

    def forward_padded(self, y: torch.Tensor, style_weights: torch.Tensor | None = None, *,
                       signed: bool = False) -> torch.Tensor:
        """The generator on an input already a multiple of ``config.multiple``, no checks (exports to ONNX);
        0..1 in and out unless ``signed`` (then [-1, 1] in)."""
        out = self.generator(style_weights)(y if signed else y * 2 - 1)
        return (out + 1) / 2

    def save_pretrained(self, folder: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """``config.json`` + ``model.safetensors`` (fp16), both generators."""
        # style_names: what `brushwork models` lists (the two directions a --model takes with -s)
        return save_folder(self, folder, KIND, {**asdict(self.config), "style_names": list(self.config.names)},
                           MODEL_FORMAT, meta)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> CycleGANNet:
        raw = read_config(folder, (KIND,), MODEL_FORMAT, folder_label="a CycleGAN model",
                          kind_label="a cyclegan one", format_label="CycleGAN model")
        try:
            config = CycleGANConfig(**config_fields(raw, CycleGANConfig))
        except (BrushworkError, TypeError, ValueError) as exc:
            raise ModelError(f"{Path(folder) / 'config.json'} describes no valid CycleGAN: {exc}") from exc
        model = cls(config)
        load_weights(model, folder, "CycleGAN")
        return model.eval()


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class CycleGANStylizer(FeedForwardStylizer):
    """A trained CycleGAN held on a device: the feed-forward stylizer's controls (size, strength,
    ``preserve_color``, mask, memory check) around one of its two generators.

    ``styles`` names the output domain: None or ``names[0]`` (e.g. ``monet``) paints photos,
    ``names[1]`` (``photo``) runs the reverse generator on paintings.
    """

    net_class = CycleGANNet

    def stylize(self, photo: ImageInput, styles: StyleChoice = None, **options: Any) -> FeedForwardResult:
        names = self.style_names
        chosen = names[0] if styles is None else styles
        pairs = [(chosen, 1.0)] if isinstance(chosen, str) else list(dict(chosen).items()) \
            if isinstance(chosen, dict) else list(chosen)
        if len({n for n, w in pairs if float(w) > 0}) > 1:
            raise ConfigError(f"a CycleGAN translates one way at a time: choose {names[0]} or {names[1]}, not a blend")
        return super().stylize(photo, pairs, **options)


def default_depth(crop: int) -> int:
    """pix2pix's U-Net depth for a crop: 8 at 256 px (1x1 bottleneck), 7 at 128 px."""
    return max(1, min(8, int(math.log2(crop))))
