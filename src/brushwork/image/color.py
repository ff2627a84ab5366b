"""Colour transforms for original-colour preservation (Gatys et al. 2016, "Preserving
Color in Neural Artistic Style Transfer"): luminance-only transfer in YIQ, and
matching an image's colour mean/covariance to another's.

All functions take and return ``(B, 3, H, W)`` RGB tensors in 0..1.
"""

from __future__ import annotations

import torch

_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """RGB -> YIQ (Y is luminance in 0..1; I, Q chroma)."""
    m = _RGB_TO_YIQ.to(x.device, x.dtype)
    return torch.einsum("ij,bjhw->bihw", m, x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """YIQ -> RGB (the exact inverse of :func:`rgb_to_yiq`)."""
    m = torch.linalg.inv(_RGB_TO_YIQ.double()).to(x.device, x.dtype)
    return torch.einsum("ij,bjhw->bihw", m, x)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Luminance Y as a ``(B, 1, H, W)`` tensor."""
    return rgb_to_yiq(x)[:, :1]


def gray3(y: torch.Tensor) -> torch.Tensor:
    """A one-channel luminance image repeated to three channels, for an RGB encoder."""
    return y.expand(-1, 3, -1, -1).contiguous()


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and std (Gatys 2016, eq. 1)."""
    s_mean, s_std = style_y.mean(), style_y.std().clamp_min(1e-5)
    c_mean, c_std = content_y.mean(), content_y.std()
    return ((style_y - s_mean) * (c_std / s_std) + c_mean).clamp(0, 1)


def combine_luminance(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The stylized image's luminance with the content's chroma (I, Q), back in RGB."""
    y = luminance(stylized)
    iq = rgb_to_yiq(content)[:, 1:]
    return yiq_to_rgb(torch.cat([y, iq], dim=1)).clamp(0, 1)


def _sym_sqrt(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    vals = vals.clamp_min(1e-8)
    d = vals.rsqrt() if inverse else vals.sqrt()
    return vecs @ torch.diag(d) @ vecs.T


def match_color(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Recolour ``source`` so its pixel mean and covariance equal ``target``'s.

    Uses the symmetric matrix square root (the "Image Analogies" variant in Gatys 2016),
    which keeps hues more faithful than a Cholesky factor.
    """
    s = source.double().flatten(2)[0]  # (3, N)
    t = target.double().flatten(2)[0]
    mu_s, mu_t = s.mean(1, keepdim=True), t.mean(1, keepdim=True)
    eye = torch.eye(3, dtype=torch.float64, device=s.device) * 1e-5
    cov_s = torch.cov(s) + eye
    cov_t = torch.cov(t) + eye
    a = _sym_sqrt(cov_t) @ _sym_sqrt(cov_s, inverse=True)
    out = a @ (s - mu_s) + mu_t
    return out.reshape_as(source[0]).unsqueeze(0).to(source.dtype).clamp(0, 1)
