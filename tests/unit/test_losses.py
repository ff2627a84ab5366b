"""Perceptual losses: hand-checked values, invariances, masks, gradients and module wrappers."""

from __future__ import annotations

import pytest
import torch

from brushwork.losses import (
    ContentLoss,
    GramStyleLoss,
    MeanStdStyleLoss,
    TVLoss,
    content_loss,
    gram_loss,
    gram_matrix,
    mean_std,
    mean_std_loss,
    tv_loss,
)


def feats(seed: int, shape: tuple[int, ...] = (1, 4, 6, 6), dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --------------------------------------------------------------------------- gram_matrix


def test_gram_matrix_hand_computed() -> None:
    # two channels over two positions: a = [1, 2], b = [3, 4]
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    g = gram_matrix(f)
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 2
    assert g.shape == (1, 2, 2)
    torch.testing.assert_close(g, expected)


def test_gram_matrix_shape_and_symmetry() -> None:
    f = feats(0, (3, 5, 4, 7))
    g = gram_matrix(f)
    assert g.shape == (3, 5, 5)
    torch.testing.assert_close(g, g.transpose(1, 2))
    ref = torch.einsum("bchw,bdhw->bcd", f, f) / (4 * 7)
    torch.testing.assert_close(g, ref)


def test_gram_matrix_of_bf16_features_is_float32() -> None:
    g = gram_matrix(feats(1).bfloat16())
    assert g.dtype == torch.float32


def test_masked_gram_all_ones_equals_unmasked() -> None:
    f = feats(2)
    mask = torch.ones(1, 1, 6, 6)
    torch.testing.assert_close(gram_matrix(f, mask), gram_matrix(f))


def test_masked_gram_all_ones_at_image_resolution_equals_unmasked() -> None:
    f = feats(3)
    mask = torch.ones(1, 1, 24, 24)  # resized to the 6x6 feature map
    torch.testing.assert_close(gram_matrix(f, mask), gram_matrix(f))


def test_masked_gram_half_mask_equals_gram_of_the_half() -> None:
    f = feats(4, (2, 3, 4, 6))
    mask = torch.zeros(1, 1, 4, 6)
    mask[..., :3] = 1.0
    torch.testing.assert_close(gram_matrix(f, mask), gram_matrix(f[..., :3].contiguous()))


def test_masked_gram_is_independent_of_mask_scale() -> None:
    f = feats(5)
    mask = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(gram_matrix(f, mask), gram_matrix(f, 0.5 * mask))


def test_masked_gram_empty_mask_is_finite() -> None:
    g = gram_matrix(feats(6), torch.zeros(1, 1, 6, 6))
    assert torch.isfinite(g).all()


# --------------------------------------------------------------------------- gram_loss


def test_gram_loss_zero_for_identical() -> None:
    f = feats(7)
    assert gram_loss(f, gram_matrix(f)).item() == pytest.approx(0.0, abs=1e-10)


def test_gram_loss_positive_for_different() -> None:
    assert gram_loss(feats(8), gram_matrix(feats(9))).item() > 0


def test_gram_loss_against_zero_gram_is_one() -> None:
    f = feats(10)
    target = gram_matrix(f)
    # ‖0 - G_t‖² / ‖G_t‖² = 1
    assert gram_loss(torch.zeros_like(f), target).item() == pytest.approx(1.0, rel=1e-6)


@pytest.mark.parametrize("k", [0.01, 3.0, 255.0])
def test_gram_loss_is_invariant_to_a_common_feature_scale(k: float) -> None:
    f, s = feats(11, dtype=torch.float64), feats(12, dtype=torch.float64)
    base = gram_loss(f, gram_matrix(s))
    scaled = gram_loss(k * f, gram_matrix(k * s))  # both Grams scale by k²
    assert scaled.item() == pytest.approx(base.item(), rel=1e-9)


def test_gram_loss_value() -> None:
    f, s = feats(13), feats(14)
    g, t = gram_matrix(f), gram_matrix(s)
    expected = ((g - t) ** 2).sum() / (t**2).sum()
    torch.testing.assert_close(gram_loss(f, t), expected)


def test_gram_loss_batch_is_mean_of_items() -> None:
    f, s = feats(15, (2, 3, 4, 4)), feats(16, (2, 3, 4, 4))
    t = gram_matrix(s)
    per_item = [gram_loss(f[i : i + 1], t[i : i + 1]) for i in range(2)]
    torch.testing.assert_close(gram_loss(f, t), torch.stack(per_item).mean())


# --------------------------------------------------------------------------- content_loss


def test_content_loss_zero_at_target_positive_elsewhere() -> None:
    t = feats(17)
    assert content_loss(t, t).item() == 0.0
    assert content_loss(t + 0.1, t).item() > 0
    # relative: ‖F − F_t‖² / ‖F_t‖²
    assert content_loss(torch.zeros_like(t), t).item() == pytest.approx(1.0, rel=1e-6)
    assert content_loss(2 * t, t).item() == pytest.approx(1.0, rel=1e-6)


def test_content_loss_masked_ignores_outside() -> None:
    t = feats(18)
    f = t.clone()
    f[..., 3:] += 5.0  # differ only on the right half
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., :3] = 1.0
    assert content_loss(f, t, mask).item() == pytest.approx(0.0, abs=1e-12)
    assert content_loss(f, t).item() > 0


# --------------------------------------------------------------------------- tv_loss


def test_tv_loss_zero_on_constant() -> None:
    assert tv_loss(torch.full((1, 3, 5, 7), 0.3)).item() == 0.0


def test_tv_loss_hand_computed() -> None:
    x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])  # vertical stripes: dw = 1 everywhere, dh = 0
    assert tv_loss(x).item() == pytest.approx(1.0)
    assert tv_loss(x.transpose(-1, -2)).item() == pytest.approx(1.0)


def test_tv_loss_smooth_below_noise() -> None:
    noise = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    ramp = torch.linspace(0, 1, 8).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    assert tv_loss(ramp) < tv_loss(noise)


# --------------------------------------------------------------------------- mean_std


def test_mean_std_values() -> None:
    f = feats(19, (2, 3, 4, 5))
    mean, std = mean_std(f)
    assert mean.shape == (2, 3, 1, 1) and std.shape == (2, 3, 1, 1)
    torch.testing.assert_close(mean, f.mean(dim=(2, 3), keepdim=True))
    ref = (f.var(dim=(2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt()
    torch.testing.assert_close(std, ref)


def test_mean_std_of_constant_is_finite() -> None:
    mean, std = mean_std(torch.full((1, 2, 3, 3), 4.0))
    torch.testing.assert_close(mean, torch.full_like(mean, 4.0))
    assert (std > 0).all() and torch.isfinite(std).all()


def test_mean_std_loss_zero_at_own_stats_positive_elsewhere() -> None:
    f = feats(20)
    mean, std = mean_std(f)
    assert mean_std_loss(f, mean, std).item() == pytest.approx(0.0, abs=1e-12)
    assert mean_std_loss(feats(21) * 2 + 1, mean, std).item() > 0


def test_mean_std_loss_value() -> None:
    f, s = feats(22), feats(23) * 3 + 2
    m, sd = mean_std(f)
    tm, tsd = mean_std(s)
    expected = (((m - tm) ** 2).sum() + ((sd - tsd) ** 2).sum()) / ((tm**2).sum() + (tsd**2).sum())
    torch.testing.assert_close(mean_std_loss(f, tm, tsd), expected)


# --------------------------------------------------------------------------- gradients


def test_gradcheck_gram_loss() -> None:
    f = feats(24, (1, 2, 3, 3), torch.float64).requires_grad_()
    target = gram_matrix(feats(25, (1, 2, 3, 3), torch.float64))
    assert torch.autograd.gradcheck(lambda x: gram_loss(x, target), (f,))


def test_gradcheck_gram_loss_masked() -> None:
    f = feats(26, (1, 2, 3, 3), torch.float64).requires_grad_()
    mask = torch.rand(1, 1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    target = gram_matrix(feats(27, (1, 2, 3, 3), torch.float64), mask)
    assert torch.autograd.gradcheck(lambda x: gram_loss(x, target, mask), (f,))


def test_gradcheck_content_loss() -> None:
    f = feats(28, (1, 2, 3, 3), torch.float64).requires_grad_()
    target = feats(29, (1, 2, 3, 3), torch.float64)
    assert torch.autograd.gradcheck(lambda x: content_loss(x, target), (f,))


def test_gradcheck_tv_loss() -> None:
    x = feats(30, (1, 3, 3, 4), torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(tv_loss, (x,))


def test_gradcheck_mean_std_loss() -> None:
    f = feats(31, (1, 2, 3, 3), torch.float64).requires_grad_()
    tm, tsd = mean_std(feats(32, (1, 2, 3, 3), torch.float64) * 2 + 1)
    assert torch.autograd.gradcheck(lambda x: mean_std_loss(x, tm, tsd), (f,))


def test_losses_keep_float64() -> None:
    f = feats(33, dtype=torch.float64)
    assert gram_matrix(f).dtype == torch.float64
    assert content_loss(f, f).dtype == torch.float64
    assert tv_loss(f).dtype == torch.float64
    assert mean_std(f)[0].dtype == torch.float64


def test_losses_upcast_bf16_to_float32() -> None:
    f = feats(34).bfloat16()
    t = feats(35)
    assert gram_loss(f, gram_matrix(t)).dtype == torch.float32
    assert content_loss(f, t).dtype == torch.float32
    assert tv_loss(f).dtype == torch.float32
    assert mean_std_loss(f, *mean_std(t)).dtype == torch.float32


# --------------------------------------------------------------------------- modules


def test_content_module_matches_function() -> None:
    f, t = feats(36), feats(37)
    torch.testing.assert_close(ContentLoss(t)(f), content_loss(f, t))


def test_gram_module_matches_function() -> None:
    f, s = feats(38), feats(39)
    torch.testing.assert_close(GramStyleLoss(s)(f), gram_loss(f, gram_matrix(s)))


def test_gram_module_masked_matches_function() -> None:
    f, s = feats(40), feats(41)
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., 2:] = 1.0
    module = GramStyleLoss(s, mask)
    torch.testing.assert_close(module.target, gram_matrix(s, mask))
    torch.testing.assert_close(module(f, mask), gram_loss(f, gram_matrix(s, mask), mask))


def test_mean_std_module_matches_function() -> None:
    f, s = feats(42), feats(43)
    torch.testing.assert_close(MeanStdStyleLoss(s)(f), mean_std_loss(f, *mean_std(s)))


def test_tv_module_matches_function() -> None:
    x = feats(44, (1, 3, 5, 5))
    torch.testing.assert_close(TVLoss()(x), tv_loss(x))


def test_modules_hold_targets_as_buffers_without_grad() -> None:
    s = feats(45).requires_grad_()
    for module in (ContentLoss(s), GramStyleLoss(s), MeanStdStyleLoss(s)):
        buffers = dict(module.named_buffers())
        assert buffers
        assert all(not b.requires_grad for b in buffers.values())
        assert list(module.parameters()) == []


def test_module_loss_backpropagates_to_input() -> None:
    f = feats(46).requires_grad_()
    loss = GramStyleLoss(feats(47))(f) + ContentLoss(feats(48))(f) + MeanStdStyleLoss(feats(49))(f) + TVLoss()(f)
    loss.backward()
    assert f.grad is not None and torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0


def test_bf16_gram_matches_float32_and_keeps_grad_dtype() -> None:
    torch.manual_seed(0)
    f = (torch.rand(1, 16, 12, 10) * 50).to(torch.bfloat16).requires_grad_()
    g = gram_matrix(f)
    ref = gram_matrix(f.detach().float())
    assert g.dtype == torch.float32  # losses are taken in float32 whatever the features' precision
    assert ((g - ref).norm() / ref.norm()) < 5e-3
    g.sum().backward()
    assert f.grad is not None and f.grad.dtype == torch.bfloat16
    f32 = f.detach().float().requires_grad_()
    gram_matrix(f32).sum().backward()
    assert ((f.grad.float() - f32.grad).norm() / f32.grad.norm()) < 1e-2
