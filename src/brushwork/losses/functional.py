"""Perceptual losses (Gatys et al. 2016; Johnson et al. 2016; Huang & Belongie 2017).

Style and content losses here are *normalised by their target's magnitude*, so a
loss of 1.0 means "as far from the target as the target is from zero". That makes
per-layer contributions comparable (relu1_1 and relu5_1 differ by orders of
magnitude otherwise), and the same default weights work for any weight source
(Caffe's 0..255 features or torchvision's normalised ones) and any image size.
Losses are computed in (at least) float32 even when features come from a bf16 pass;
float64 inputs stay float64.

Shapes: features are ``(B, C, H, W)``, Gram matrices ``(B, C, C)``, masks ``(B or 1, 1, H, W)``.
"""

from __future__ import annotations

import torch

from brushwork.image.masks import resize_mask

_EPS = 1e-8


def _f32(x: torch.Tensor) -> torch.Tensor:
    """At least float32: bf16/fp16 are upcast, float64 is kept (so gradcheck and float64 callers work)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class _Gram(torch.autograd.Function):
    """``F Fᵀ · scale`` with a one-matmul backward, ``(dG + dGᵀ) F · scale``.

    Plain autograd treats ``F`` and ``Fᵀ`` as two inputs: two matmuls plus a full-size
    gradient sum per style layer, about a sixth of an optimization step on CPU.

    bf16 features (a bf16 autocast pass) are multiplied as they are, with the
    matmul accumulating in float32 and the Gram returned in float32: no full-size float32
    copy of every style layer, ~1.6x faster on CPU, and the Gram's relative rounding error
    (~2e-3) stays far below the style losses an optimization reaches.
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(f)
        ctx.scale = scale
        return _f32(torch.bmm(f, f.transpose(1, 2))).mul_(scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (f,) = ctx.saved_tensors
        return torch.bmm((grad + grad.transpose(1, 2)).mul_(ctx.scale).to(f.dtype), f), None


def gram_matrix(features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Channel correlations ``F Fᵀ / N`` averaged over positions (``N = H·W``).

    With a soft ``mask`` the average is weighted by it (Gatys et al. 2017, "Controlling
    Perceptual Factors"), so a region's Gram is comparable to a whole image's.
    """
    b, c, h, w = features.shape
    if mask is None:
        f = features if features.dtype == torch.bfloat16 else _f32(features)  # fp16 would overflow
        return _Gram.apply(f.reshape(b, c, h * w), 1.0 / (h * w))
    f = _f32(features).reshape(b, c, h * w)
    m = resize_mask(_f32(mask), (h, w)).reshape(mask.shape[0], 1, h * w)
    weight = m.sum(dim=2, keepdim=True).clamp_min(_EPS)
    return torch.bmm(f * m, f.transpose(1, 2)) / weight


def gram_loss(features: torch.Tensor, target_gram: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``‖G(F) − G_t‖² / ‖G_t‖²``: relative squared Gram distance (mean over the batch)."""
    g = gram_matrix(features, mask)
    t = _f32(target_gram)
    num = (g - t).pow(2).sum(dim=(-2, -1))
    den = t.pow(2).sum(dim=(-2, -1)).clamp_min(_EPS)
    return (num / den).mean()


def content_loss(features: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``‖F − F_t‖² / ‖F_t‖²``: relative squared feature distance (optionally masked)."""
    f, t = _f32(features), _f32(target)
    if mask is not None:
        m = resize_mask(_f32(mask), f.shape[-2:])
        f, t = f * m, t * m
    return (f - t).pow(2).sum() / t.pow(2).sum().clamp_min(_EPS)


def mean_std(features: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over positions, each ``(B, C, 1, 1)`` (AdaIN statistics)."""
    f = _f32(features)
    mean = f.mean(dim=(2, 3), keepdim=True)
    std = (f.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
    return mean, std


def mean_std_loss(features: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor) -> torch.Tensor:
    """Relative squared distance between channel statistics (Huang & Belongie 2017, eq. 4, normalised)."""
    mean, std = mean_std(features)
    num = (mean - target_mean).pow(2).sum(dim=(1, 2, 3)) + (std - target_std).pow(2).sum(dim=(1, 2, 3))
    den = _f32(target_mean).pow(2).sum(dim=(1, 2, 3)) + _f32(target_std).pow(2).sum(dim=(1, 2, 3))
    return (num / den.clamp_min(_EPS)).mean()


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference between neighbouring pixels (smooths noise)."""
    x = _f32(image)
    dh = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    dw = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    return dh + dw
