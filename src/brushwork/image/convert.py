"""PIL <-> tensor with an explicit value range: tensors are (1, 3, H, W) RGB in 0..1."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_tensor(img: Image.Image, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """8-bit RGB PIL image -> ``(1, 3, H, W)`` tensor in 0..1."""
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    t = torch.from_numpy(arr.copy()).permute(2, 0, 1).unsqueeze(0)
    return t.to(device=device, dtype=dtype).div_(255.0)


def from_tensor(t: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` or ``(1, 3, H, W)`` tensor in 0..1 -> 8-bit RGB PIL image (clamped, rounded)."""
    t = t.detach()
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    arr = (t.float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")
