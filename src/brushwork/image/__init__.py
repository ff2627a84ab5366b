"""Image I/O, tensor conversion, colour transforms and masks.

``io`` is torch-free (the onnxruntime path reads and writes through it); the tensor helpers load
torch only when one of them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from brushwork.image.io import ImageInput, fit_size, load_image, save_image

if TYPE_CHECKING:  # pragma: no cover
    from brushwork.image.color import luminance, match_color, rgb_to_yiq, yiq_to_rgb
    from brushwork.image.convert import from_tensor, to_tensor
    from brushwork.image.masks import load_mask

_LAZY = {"luminance": "color", "match_color": "color", "rgb_to_yiq": "color", "yiq_to_rgb": "color",
         "from_tensor": "convert", "to_tensor": "convert", "load_mask": "masks"}

__all__ = [
    "ImageInput",
    "fit_size",
    "from_tensor",
    "load_image",
    "load_mask",
    "luminance",
    "match_color",
    "rgb_to_yiq",
    "save_image",
    "to_tensor",
    "yiq_to_rgb",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"brushwork.image.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'brushwork.image' has no attribute '{name}'")
