"""Layers shared by the trained nets.

Reflection padding and nearest upsampling only move values, yet CPU autocast runs them in
float32: a bf16 activation is cast up for them and back down for the next convolution,
two full-size copies per layer that cost a third of a slim net's time at 1024 px. These
versions run in the input's dtype (exactly the same numbers) and have no parameters, so
they drop into existing nets without touching their saved weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ReflectionPad(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` in the input's dtype, also under autocast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x)


class NearestUpsample(nn.Module):
    """2x nearest-neighbour upsampling in the input's dtype, also under autocast."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.interpolate(x, scale_factor=2, mode="nearest")
