"""Frozen feature encoders (VGG19) and the sources of their weights.

Loaded lazily: ``encoders.hub`` (the cache folder) is used by torch-free code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from brushwork.encoders.vgg import LAYER_NAMES, VGG19, VGGEncoder, load_encoder
    from brushwork.encoders.weights import WEIGHT_SOURCES, WeightSpec, get_weight_spec

_LAZY = {"LAYER_NAMES": "vgg", "VGG19": "vgg", "VGGEncoder": "vgg", "load_encoder": "vgg",
         "WEIGHT_SOURCES": "weights", "WeightSpec": "weights", "get_weight_spec": "weights"}

__all__ = ["LAYER_NAMES", "VGG19", "WEIGHT_SOURCES", "VGGEncoder", "WeightSpec", "get_weight_spec", "load_encoder"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"brushwork.encoders.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'brushwork.encoders' has no attribute '{name}'")
