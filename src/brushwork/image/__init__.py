"""Image I/O, tensor conversion, colour transforms and masks."""

from brushwork.image.color import luminance, match_color, rgb_to_yiq, yiq_to_rgb
from brushwork.image.convert import from_tensor, to_tensor
from brushwork.image.io import ImageInput, fit_size, load_image, save_image
from brushwork.image.masks import load_mask

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
