"""Masks for spatial control: white (1) = apply, black (0) = leave alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from brushwork.image.convert import to_tensor
from brushwork.image.io import ImageInput, check_mask_shape, load_image


def load_mask(src: ImageInput, size: tuple[int, int] | None = None, what: str = "mask") -> tuple[torch.Tensor, bool]:
    """Load a mask as a ``(1, 1, H, W)`` float tensor in 0..1 (luminance of the image).

    If ``size`` (width, height) is given and differs, the mask is resized to it
    (bilinear) and the second return value is True, so callers can say so; a mask of another
    aspect ratio is refused in one line.
    """
    img = load_image(src, what=what)
    resized = size is not None and img.size != tuple(size)
    if resized:
        check_mask_shape(img.size, size, what)
    m = to_tensor(img).mean(dim=1, keepdim=True)
    if resized:
        m = F.interpolate(m, size=(size[1], size[0]), mode="bilinear", align_corners=False)
    return m.clamp(0, 1), resized


def resize_mask(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """A mask resized to a feature map's (H, W): area-average when shrinking keeps soft edges honest."""
    if mask.shape[-2:] == hw:
        return mask
    mode = "area" if mask.shape[-2] >= hw[0] and mask.shape[-1] >= hw[1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(mask, size=hw, mode=mode, **kwargs)


def feather(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Soften a mask's edge with a box blur of ``radius`` pixels, so composites have no hard seam."""
    if radius <= 0:
        return mask
    k = 2 * radius + 1
    padded = F.pad(mask, (radius, radius, radius, radius), mode="replicate")
    return F.avg_pool2d(padded, kernel_size=k, stride=1)
