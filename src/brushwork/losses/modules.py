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
    """Holds target channel mean/std (AdaIN's style statistics), optionally of a region of the painting."""

    def __init__(self, style_features: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        super().__init__()
        mean, std = L.mean_std(style_features.detach(), mask=mask)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return L.mean_std_loss(features, self.mean, self.std, mask)


class MMDStyleLoss(nn.Module):
    """Holds a painting's MMD statistics under ``kernel`` (and, for the Gaussian, its random features,
    seeded by ``seed``, bandwidth by the median heuristic); see :func:`~brushwork.losses.functional.mmd_loss`."""

    def __init__(self, style_features: torch.Tensor, kernel: str = "gaussian", mask: torch.Tensor | None = None,
                 *, n_features: int | None = None, seed: int = 0, offset: float = 1.0) -> None:
        super().__init__()
        f = style_features.detach()
        self.kernel, self.offset = kernel, offset
        self.rff = L.fourier_features(f, n_features, seed) if kernel == "gaussian" else None
        self.targets = L.mmd_stats(f, kernel, rff=self.rff, mask=mask)
        for i, t in enumerate(self.targets):
            self.register_buffer(f"target{i}", t)
        if self.rff is not None:
            self.register_buffer("rff_weight", self.rff.weight)
            self.register_buffer("rff_bias", self.rff.bias)

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        targets = tuple(getattr(self, f"target{i}") for i in range(len(self.targets)))
        rff = None if self.rff is None else L.FourierFeatures(self.rff_weight, self.rff_bias, self.rff.sigma)
        return L.mmd_loss(features, targets, self.kernel, rff=rff, mask=mask, offset=self.offset)


class TVLoss(nn.Module):
    """Total-variation loss as a module."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return L.tv_loss(image)
