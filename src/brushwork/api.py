"""``brushwork.stylize``: one call from a photo and a style to a PIL image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from brushwork.errors import ConfigError
from brushwork.image.io import ImageInput
from brushwork.methods.optimize import StyleSpec, optimize

METHODS = ("optimize", "adain")


def _as_specs(style: ImageInput | StyleSpec | Sequence[ImageInput | StyleSpec],
              weights: Sequence[float] | None) -> list[StyleSpec]:
    items = list(style) if isinstance(style, (list, tuple)) else [style]
    specs = [s if isinstance(s, StyleSpec) else StyleSpec(image=s) for s in items]
    if weights is not None:
        if len(weights) != len(specs):
            raise ConfigError(f"{len(weights)} style weights given for {len(specs)} styles")
        for s, w in zip(specs, weights):
            s.weight = float(w)
    return specs


def stylize(
    content: ImageInput,
    style: ImageInput | StyleSpec | Sequence[ImageInput | StyleSpec],
    *,
    method: str = "optimize",
    style_weights: Sequence[float] | None = None,
    device: str | torch.device = "cpu",
    **options: Any,
) -> Image.Image:
    """Stylize a photo and return a PIL image.

    ``style`` is one image (path, PIL, array, tensor), a :class:`StyleSpec`, or a list
    of them blended with ``style_weights``. ``options`` are the method's settings, e.g.
    ``size=512, steps=300, strength=0.7, preserve_color="luminance", mask="m.png"``.
    ``method="adain"`` runs one feed-forward pass with any painting (``strength`` is then
    AdaIN's alpha, default 1; ``decoder=`` picks a trained decoder folder).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}': choose from {', '.join(METHODS)}")
    specs = _as_specs(style, style_weights)
    if method == "adain":
        from brushwork.methods.adain import stylize_adain

        if any(s.style_mask is not None for s in specs):
            raise ConfigError("style masks (regions of the painting) are for method 'optimize'")
        return stylize_adain(content, [s.image for s in specs], weights=[s.weight for s in specs],
                             masks=[s.mask for s in specs], device=device, **options).image
    return optimize(content, specs, device=device, **options).image


def list_styles() -> list[str]:
    """Names usable as a style without an image: built-in and saved presets."""
    from brushwork.styles import preset_paths

    return sorted(preset_paths())
