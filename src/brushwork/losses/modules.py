"""Thin ``nn.Module`` wrappers holding targets, for training loops and composition."""

from __future__ import annotations

import torch
from torch import nn

from brushwork.losses import functional as L


class ContentLoss(nn.Module):
    """Holds content target features; ``forward(features)`` returns the relative loss."""

    def __init__(self, target: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("target", target.detach().float())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return L.content_loss(features, self.target)


class GramStyleLoss(nn.Module):
    """Holds a target Gram matrix (from style features, optionally masked)."""

    def __init__(self, style_features: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("target", L.gram_matrix(style_features.detach(), mask))

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return L.gram_loss(features, self.target, mask)


class MeanStdStyleLoss(nn.Module):
    """Holds target channel mean/std (AdaIN's style statistics)."""

    def __init__(self, style_features: torch.Tensor) -> None:
        super().__init__()
        mean, std = L.mean_std(style_features.detach())
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return L.mean_std_loss(features, self.mean, self.std)


class TVLoss(nn.Module):
    """Total-variation loss as a module."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return L.tv_loss(image)
