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

import math
from dataclasses import dataclass

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


def _weights(mask: torch.Tensor | None, hw: tuple[int, int]) -> torch.Tensor | None:
    """A soft mask as per-position weights ``(B or 1, 1, H·W)`` summing to 1 (None: uniform)."""
    if mask is None:
        return None
    m = resize_mask(_f32(mask), hw).flatten(2)
    return m / m.sum(dim=2, keepdim=True).clamp_min(_EPS)


def mean_std(features: torch.Tensor, eps: float = 1e-5,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std over positions, each ``(B, C, 1, 1)`` (AdaIN statistics); with a soft
    ``mask``, weighted by it (a region's statistics)."""
    f = _f32(features)
    if mask is None:
        mean = f.mean(dim=(2, 3), keepdim=True)
        std = (f.var(dim=(2, 3), keepdim=True, unbiased=False) + eps).sqrt()
        return mean, std
    b, c, h, w = f.shape
    wt = _weights(mask, (h, w))
    flat = f.reshape(b, c, h * w)
    mean = (flat * wt).sum(dim=2, keepdim=True)
    var = ((flat - mean).pow(2) * wt).sum(dim=2, keepdim=True)
    return mean.unsqueeze(-1), (var + eps).sqrt().unsqueeze(-1)


def mean_std_loss(features: torch.Tensor, target_mean: torch.Tensor, target_std: torch.Tensor,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Relative squared distance between channel statistics (Huang & Belongie 2017, eq. 4, normalised).

    As a style loss it is the MMD of Li et al. 2017 with batch-norm statistics: what AdaIN matches."""
    mean, std = mean_std(features, mask=mask)
    num = (mean - target_mean).pow(2).sum(dim=(1, 2, 3)) + (std - target_std).pow(2).sum(dim=(1, 2, 3))
    den = _f32(target_mean).pow(2).sum(dim=(1, 2, 3)) + _f32(target_std).pow(2).sum(dim=(1, 2, 3))
    return (num / den.clamp_min(_EPS)).mean()


# ------------------------------------------------------------------------------------------------ MMD
# Li, Wang, Liu & Hou 2017, "Demystifying Neural Style Transfer": matching Gram matrices minimises the
# maximum mean discrepancy MMD²(X, Y) = E k(x, x') + E k(y, y') - 2 E k(x, y) between the positions'
# feature vectors of the two images under the kernel k(x, y) = (xᵀy)². Other kernels transfer style too.
# Every kernel here is computed through its mean embedding (linear in the number of positions, so one
# loss costs about what a Gram loss costs) and normalised like the other losses: MMD² / E k(y, y').

KERNELS = ("gaussian", "linear", "poly")


@dataclass(frozen=True)
class FourierFeatures:
    """Random Fourier features of the Gaussian kernel ``exp(-‖x-y‖² / 2σ²)`` (Rahimi & Recht 2007):
    ``φ(x) = sqrt(2/D) cos(Wx + b)`` with ``W ~ N(0, 1/σ²)``, so ``k(x, y) ≈ φ(x)ᵀφ(y)`` and the Gaussian MMD
    is the distance between the two images' mean ``φ``. ``weight`` ``(D, C)`` already holds the ``1/σ``."""

    weight: torch.Tensor
    bias: torch.Tensor
    sigma: float


def median_sigma(features: torch.Tensor, samples: int = 1024, seed: int = 0) -> float:
    """The median heuristic bandwidth: the median distance between ``samples`` random positions."""
    c = features.shape[1]
    x = _f32(features[0]).reshape(c, -1).T
    if x.shape[0] > samples:
        idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))[:samples]
        x = x[idx.to(x.device)]
    d = torch.cdist(x, x)
    off = d[~torch.eye(d.shape[0], dtype=torch.bool, device=d.device)]
    return max(float(off.median()) if off.numel() else 1.0, 1e-6)


def fourier_features(style_features: torch.Tensor, n_features: int | None = None, seed: int = 0,
                     sigma: float | None = None) -> FourierFeatures:
    """A Gaussian kernel's random features for ``C``-channel features; σ by the median heuristic on
    ``style_features`` unless given; ``D`` = ``n_features`` (default 4·C, at most 1024)."""
    c = style_features.shape[1]
    d = n_features or min(1024, 4 * c)
    sigma = sigma or median_sigma(style_features, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.promote_types(style_features.dtype, torch.float32)
    weight = torch.randn(d, c, generator=gen, dtype=torch.float64) / sigma
    bias = torch.rand(d, generator=gen, dtype=torch.float64) * (2 * math.pi)
    dev = style_features.device
    return FourierFeatures(weight.to(dev, dtype), bias.to(dev, dtype), sigma)


class _FourierMean(torch.autograd.Function):
    """``Σ_n w_n φ(x_n)`` ``(B, D)`` over positions in chunks, with a matching chunked backward: the
    ``(positions x D)`` matrix is never whole (it would be ~0.5 GB at relu1_1 of a 512 px image)."""

    CHUNK = 8192

    @staticmethod
    def forward(ctx, f: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,  # type: ignore[override]
                wt: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(f, weight, bias, wt)
        n = f.shape[2]
        out = f.new_zeros(f.shape[0], weight.shape[0])
        for s in range(0, n, _FourierMean.CHUNK):
            z = torch.cos(torch.matmul(f[:, :, s:s + _FourierMean.CHUNK].transpose(1, 2), weight.T) + bias)
            out += (z * wt[:, 0, s:s + _FourierMean.CHUNK, None]).sum(1) if wt is not None else z.sum(1) / n
        return out * math.sqrt(2.0 / weight.shape[0])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        f, weight, bias, wt = ctx.saved_tensors
        n = f.shape[2]
        g = grad[:, None, :] * math.sqrt(2.0 / weight.shape[0])
        out = torch.empty_like(f)
        for s in range(0, n, _FourierMean.CHUNK):
            z = torch.matmul(f[:, :, s:s + _FourierMean.CHUNK].transpose(1, 2), weight.T) + bias
            dz = -torch.sin(z) * g
            dz = dz * wt[:, 0, s:s + _FourierMean.CHUNK, None] if wt is not None else dz / n
            out[:, :, s:s + _FourierMean.CHUNK] = torch.matmul(dz, weight).transpose(1, 2)
        return out, None, None, None


def mmd_stats(features: torch.Tensor, kernel: str = "gaussian", *, rff: FourierFeatures | None = None,
              mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
    """The statistics an MMD under ``kernel`` compares (the kernel's mean embedding), blendable by weighted
    mean: linear: the channel means ``(B, C)``; poly: the Gram matrix and the means; gaussian: the mean
    random Fourier feature ``(B, D)`` (``rff`` required)."""
    b, c, h, w = features.shape
    wt = _weights(mask, (h, w))
    f = _f32(features).reshape(b, c, h * w)
    mean = f.mean(dim=2) if wt is None else (f * wt).sum(dim=2)
    if kernel == "linear":
        return (mean,)
    if kernel == "poly":
        return gram_matrix(features, mask), mean
    if kernel == "gaussian":
        if rff is None:
            raise ValueError("the gaussian kernel needs its random features (fourier_features)")
        return (_FourierMean.apply(f, rff.weight.to(f.dtype), rff.bias.to(f.dtype), wt),)
    raise ValueError(f"unknown kernel '{kernel}' (choose from {', '.join(KERNELS)})")


def _sq(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).flatten(1).sum(1)


def mmd_loss(features: torch.Tensor, target: tuple[torch.Tensor, ...], kernel: str = "gaussian", *,
             rff: FourierFeatures | None = None, mask: torch.Tensor | None = None,
             offset: float = 1.0) -> torch.Tensor:
    """``MMD²(F, target) / E k(y, y')`` (mean over the batch), ``target`` from :func:`mmd_stats`.

    poly is ``k(x, y) = (xᵀy + c)²`` with ``c = offset · ‖mean y‖²``; ``offset=0`` is the Gram loss exactly
    (Li et al.'s observation), larger offsets weigh the channel means in as well."""
    stats = mmd_stats(features, kernel, rff=rff, mask=mask)
    t = tuple(_f32(x) for x in target)
    if kernel == "poly":
        cst = offset * _sq(t[1])
        num = _sq(stats[0] - t[0]) + 2 * cst * _sq(stats[1] - t[1])
        den = _sq(t[0]) + 2 * cst * _sq(t[1]) + cst.pow(2)
    else:
        num, den = _sq(stats[0] - t[0]), _sq(t[0])
    return (num / den.clamp_min(_EPS)).mean()


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel: str = "gaussian", *, sigma: float = 1.0,
         c: float = 0.0) -> torch.Tensor:
    """The exact (biased, quadratic-time) MMD² between two sets of vectors ``(N, C)`` and ``(M, C)``: the
    reference the mean-embedding losses above are checked against (small sets only)."""
    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if kernel == "gaussian":
            return torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2))
        dot = a @ b.T
        return dot if kernel == "linear" else (dot + c).pow(2)

    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference between neighbouring pixels (smooths noise)."""
    x = _f32(image)
    dh = (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean()
    dw = (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()
    return dh + dw
