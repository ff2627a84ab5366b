"""The MMD style loss (Li et al. 2017): exact against the quadratic-time definition, Gram as its poly-2 case,
gradients, masks, the module, and its selection in the optimize method (--style-loss / --style-kernel)."""

from __future__ import annotations

import pytest
import torch

from brushwork.errors import ConfigError
from brushwork.losses import (
    KERNELS,
    MeanStdStyleLoss,
    MMDStyleLoss,
    fourier_features,
    gram_loss,
    gram_matrix,
    mean_std,
    mean_std_loss,
    mmd2,
    mmd_loss,
    mmd_stats,
)
from brushwork.losses.functional import _sq


def feats(seed: int, shape: tuple[int, ...] = (1, 5, 6, 7), scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift


def vectors(f: torch.Tensor) -> torch.Tensor:
    return f[0].reshape(f.shape[1], -1).T


X, Y = feats(0), feats(1, (1, 5, 4, 6), 1.4, 0.3)


def test_poly_with_no_offset_is_the_gram_loss() -> None:
    torch.testing.assert_close(mmd_loss(X, mmd_stats(Y, "poly"), "poly", offset=0.0), gram_loss(X, gram_matrix(Y)))
    # and the Gram distance is the exact MMD² under (xᵀy)²
    torch.testing.assert_close(_sq(gram_matrix(X) - gram_matrix(Y))[0], mmd2(vectors(X), vectors(Y), "poly"))


def test_poly_with_offset_and_linear_match_the_exact_mmd() -> None:
    c = float(_sq(mmd_stats(Y, "linear")[0]))
    g, m = mmd_stats(Y, "poly")
    den = _sq(g) + 2 * c * _sq(m) + c**2
    torch.testing.assert_close(mmd_loss(X, (g, m), "poly", offset=1.0) * den[0],
                               mmd2(vectors(X), vectors(Y), "poly", c=c))
    lin = mmd_loss(X, mmd_stats(Y, "linear"), "linear") * _sq(mmd_stats(Y, "linear")[0])[0]
    torch.testing.assert_close(lin, mmd2(vectors(X), vectors(Y), "linear"))


def test_gaussian_random_features_approximate_the_exact_mmd() -> None:
    rff = fourier_features(Y, n_features=20000, seed=3, sigma=2.0)
    approx = _sq(mmd_stats(X, "gaussian", rff=rff)[0] - mmd_stats(Y, "gaussian", rff=rff)[0])[0]
    exact = mmd2(vectors(X), vectors(Y), "gaussian", sigma=2.0)
    assert abs(float(approx - exact)) < 0.1 * float(exact)


@pytest.mark.parametrize("kernel", KERNELS)
def test_zero_at_own_statistics_and_positive_elsewhere(kernel: str) -> None:
    rff = fourier_features(Y, seed=0) if kernel == "gaussian" else None
    target = mmd_stats(Y, kernel, rff=rff)
    assert float(mmd_loss(Y, target, kernel, rff=rff)) < 1e-10
    assert float(mmd_loss(X, target, kernel, rff=rff)) > 1e-3


@pytest.mark.parametrize("kernel", KERNELS)
def test_gradcheck_masked_and_not(kernel: str) -> None:
    rff = fourier_features(Y, 32, seed=0) if kernel == "gaussian" else None
    target = mmd_stats(Y, kernel, rff=rff)
    mask = torch.rand(1, 1, 6, 7, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    x = X.clone().requires_grad_(True)
    for m in (None, mask):
        assert torch.autograd.gradcheck(lambda a, m=m: mmd_loss(a, target, kernel, rff=rff, mask=m), (x,))


def test_chunked_gaussian_matches_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    from brushwork.losses import functional

    rff = fourier_features(Y, 16, seed=0)
    x = X.clone().requires_grad_(True)
    whole = mmd_loss(x, mmd_stats(Y, "gaussian", rff=rff), "gaussian", rff=rff)
    (g_whole,) = torch.autograd.grad(whole, x)
    monkeypatch.setattr(functional._FourierMean, "CHUNK", 5)
    part = mmd_loss(x, mmd_stats(Y, "gaussian", rff=rff), "gaussian", rff=rff)
    (g_part,) = torch.autograd.grad(part, x)
    torch.testing.assert_close(whole, part)
    torch.testing.assert_close(g_whole, g_part)


def test_masked_statistics_are_those_of_the_region() -> None:
    mask = torch.zeros(1, 1, 6, 7, dtype=torch.float64)
    mask[..., :, :3] = 1
    region = X[..., :, :3]
    for kernel in ("linear", "poly"):
        for a, b in zip(mmd_stats(X, kernel, mask=mask), mmd_stats(region, kernel)):
            torch.testing.assert_close(a, b)
    for a, b in zip(mean_std(X, mask=mask), mean_std(region)):
        torch.testing.assert_close(a, b)


def test_modules_match_the_functions() -> None:
    for kernel in KERNELS:
        mod = MMDStyleLoss(Y, kernel, seed=2)
        rff = fourier_features(Y, seed=2) if kernel == "gaussian" else None
        torch.testing.assert_close(mod(X), mmd_loss(X, mmd_stats(Y, kernel, rff=rff), kernel, rff=rff))
    torch.testing.assert_close(MeanStdStyleLoss(Y)(X), mean_std_loss(X, *mean_std(Y)))


def test_float32_and_bf16_features() -> None:
    y32 = Y.float()
    mod = MMDStyleLoss(y32, "gaussian")
    assert mod(X.bfloat16()).dtype == torch.float32


# ------------------------------------------------------------------------------------------ the optimize method


def _config(**kw):
    from brushwork.methods.builtin import OptimizeMethod, OptimizeOptions
    from brushwork.methods.registry import Request

    return OptimizeMethod()._config(Request(styles=[("x", 1.0)], options=OptimizeOptions(**kw), size=64))


def test_options_select_the_loss_and_kernel() -> None:
    assert (_config().style_loss, _config().style_kernel) == ("gram", "gaussian")
    cfg = _config(style_loss="mmd", style_kernel="poly")
    assert (cfg.style_loss, cfg.style_kernel) == ("mmd", "poly")
    with pytest.raises(ConfigError, match="--style-kernel goes with --style-loss mmd"):
        _config(style_kernel="linear")


@pytest.mark.parametrize("field,value", [("style_loss", "mdd"), ("style_kernel", "gauss")])
def test_unknown_loss_or_kernel_is_one_line(field: str, value: str) -> None:
    from brushwork.methods.optimize import OptimizeConfig

    with pytest.raises(ConfigError) as info:
        OptimizeConfig(**{field: value}).validate()
    assert "\n" not in str(info.value) and "did you mean" in str(info.value)


@pytest.mark.parametrize("argv", [["--style-loss", "mdd"], ["--style-loss", "mmd", "--style-kernel", "rbf"]])
def test_cli_unknown_loss_or_kernel_exit_2(argv: list[str], media_files, tmp_path, capsys) -> None:
    from brushwork.cli.main import main

    code = main(["stylize", str(media_files.photo), "-s", str(media_files.painting), "-o", str(tmp_path / "o.png"),
                 *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "invalid choice" in err[0]


@pytest.mark.parametrize("loss,kernel", [("meanstd", "gaussian"), ("mmd", "gaussian")])
def test_optimize_with_a_region_mask_and_a_blend(loss: str, kernel: str, media_files) -> None:
    """Two paintings, one of them only on the right half, the other blended over the rest: the loss falls.
    (L-BFGS without a line search may overshoot on a step, and where depends on the CPU's kernels: on an
    AVX2-only CPU step 3 of this run rose above step 1, so the run is long enough to fall clearly.)"""
    from PIL import Image

    from brushwork.methods.optimize import StyleSpec, optimize

    right = Image.new("L", (56, 42), 0)
    right.paste(255, (28, 0, 56, 42))
    specs = [StyleSpec(media_files.painting, 0.6), StyleSpec(media_files.painting2, 0.4, mask=right),
             StyleSpec(media_files.field, 0.5, style_mask=media_files.field_sky)]
    r = optimize(media_files.photo, specs, size=56, steps=8, style_loss=loss, style_kernel=kernel)
    styles = [h["style"] for h in r.history]
    assert r.image.size == (56, 42) and styles[-1] < 0.6 * styles[0]


@pytest.mark.parametrize("loss,kernel,layers,error", [
    ("meanstd", "gaussian", None, "no channel means for relu5_1"),
    ("mmd", "gaussian", ("relu1_1", "relu2_1"), "needs the painting image"),
    ("mmd", "poly", ("relu1_1", "relu2_1"), None),
])
def test_presets_with_the_other_losses(loss: str, kernel: str, layers, error: str | None, media_files) -> None:
    from brushwork.methods.optimize import optimize

    kw = {"style_layers": layers} if layers else {}
    if error:
        with pytest.raises(ConfigError, match=error):
            optimize(media_files.photo, ["starry_night"], size=56, steps=1, style_loss=loss, style_kernel=kernel, **kw)
    else:
        r = optimize(media_files.photo, ["starry_night"], size=56, steps=2, style_loss=loss, style_kernel=kernel, **kw)
        assert r.steps == 2 and r.losses["style"] > 0
