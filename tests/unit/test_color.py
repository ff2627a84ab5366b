"""Colour transforms: YIQ round trip, luminance, colour matching and luminance-only transfer."""

from __future__ import annotations

import pytest
import torch

from brushwork.image import luminance, match_color, rgb_to_yiq, yiq_to_rgb
from brushwork.image.color import combine_luminance, gray3, match_luminance


def rand_image(seed: int, h: int = 8, w: int = 8, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(1, 3, h, w, generator=g)


def pixel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.double().flatten(2)[0]
    return flat.mean(1), torch.cov(flat)


def test_yiq_round_trip() -> None:
    x = rand_image(0)
    yiq = rgb_to_yiq(x)
    assert yiq.shape == x.shape
    torch.testing.assert_close(yiq_to_rgb(yiq), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(rgb_to_yiq(yiq_to_rgb(yiq)), yiq, atol=1e-5, rtol=0)


def test_yiq_round_trip_float64_and_batch() -> None:
    x = torch.rand(2, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = yiq_to_rgb(rgb_to_yiq(x))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


@pytest.mark.parametrize("v", [0.0, 0.25, 0.5, 1.0])
def test_luminance_of_gray_is_the_gray_value(v: float) -> None:
    x = torch.full((1, 3, 3, 4), v)
    y = luminance(x)
    assert y.shape == (1, 1, 3, 4)
    torch.testing.assert_close(y, torch.full_like(y, v), atol=1e-6, rtol=0)
    iq = rgb_to_yiq(x)[:, 1:]
    torch.testing.assert_close(iq, torch.zeros_like(iq), atol=1e-6, rtol=0)  # gray has no chroma


def test_gray3_repeats_luminance() -> None:
    y = torch.rand(1, 1, 3, 3)
    g = gray3(y)
    assert g.shape == (1, 3, 3, 3)
    for c in range(3):
        torch.testing.assert_close(g[:, c : c + 1], y)


def test_match_color_matches_mean_and_covariance() -> None:
    # Source: any colours. Target: a narrow, correlated palette well inside 0..1 so no clamping occurs.
    source = rand_image(2, 16, 16)
    base = rand_image(3, 12, 10)
    mix = torch.tensor([[0.20, 0.05, 0.02], [0.04, 0.15, 0.03], [0.01, 0.06, 0.10]])
    target = (torch.einsum("ij,bjhw->bihw", mix, base - 0.5) + torch.tensor([0.6, 0.4, 0.5]).view(1, 3, 1, 1))
    out = match_color(source, target)
    assert out.shape == source.shape
    assert out.dtype == source.dtype
    assert out.min() > 0.0 and out.max() < 1.0  # the clamp did not change anything
    mu_o, cov_o = pixel_stats(out)
    mu_t, cov_t = pixel_stats(target)
    torch.testing.assert_close(mu_o, mu_t, atol=1e-5, rtol=0)
    torch.testing.assert_close(cov_o, cov_t, atol=2e-5, rtol=1e-3)


def test_match_color_of_an_image_to_itself_is_identity() -> None:
    x = rand_image(4, lo=0.2, hi=0.8)
    torch.testing.assert_close(match_color(x, x), x, atol=1e-4, rtol=0)


def test_combine_luminance_keeps_content_chroma_and_stylized_y() -> None:
    content = rand_image(5, lo=0.35, hi=0.65)
    stylized = rand_image(6, lo=0.35, hi=0.65)
    out = combine_luminance(stylized, content)
    assert out.shape == content.shape
    assert out.min() > 0.0 and out.max() < 1.0  # in gamut: the clamp did nothing
    yiq = rgb_to_yiq(out)
    torch.testing.assert_close(yiq[:, :1], luminance(stylized), atol=1e-5, rtol=0)
    torch.testing.assert_close(yiq[:, 1:], rgb_to_yiq(content)[:, 1:], atol=1e-5, rtol=0)


def test_combine_luminance_output_is_clamped() -> None:
    out = combine_luminance(torch.ones(1, 3, 2, 2), torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2))
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_match_luminance_matches_mean_and_std() -> None:
    style_y = luminance(rand_image(7, lo=0.0, hi=1.0))
    content_y = luminance(rand_image(8, lo=0.3, hi=0.6))
    out = match_luminance(style_y, content_y)
    assert out.shape == style_y.shape
    assert out.min() > 0.0 and out.max() < 1.0  # no clamping
    torch.testing.assert_close(out.mean(), content_y.mean(), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std(), content_y.std(), atol=1e-5, rtol=0)


def test_match_luminance_of_constant_style_does_not_blow_up() -> None:
    style_y = torch.full((1, 1, 4, 4), 0.3)
    content_y = luminance(rand_image(9, 4, 4))
    out = match_luminance(style_y, content_y)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, torch.full_like(out, float(content_y.mean())), atol=2e-3, rtol=0)
