"""AdaIN: the transform, the decoder's format, and the feature-space controls (tiny, random decoder)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.errors import ConfigError, ImageError, ModelError
from brushwork.losses.functional import mean_std
from brushwork.methods import adain as A


def test_adain_gives_style_statistics() -> None:
    torch.manual_seed(0)
    content = torch.randn(2, 8, 6, 5) * 3 + 1
    s_mean, s_std = torch.randn(2, 8, 1, 1), torch.rand(2, 8, 1, 1) + 0.5
    out = A.adain(content, s_mean, s_std)
    mean, std = mean_std(out)
    assert torch.allclose(mean, s_mean, atol=1e-4)
    assert torch.allclose(std, s_std, atol=1e-3)


@pytest.mark.parametrize("hw", [(8, 8), (5, 7)])
def test_decoder_upsamples_by_eight(hw: tuple[int, int]) -> None:
    dec = A.AdaINDecoder(A.DecoderConfig(in_channels=16, widths=(8, 8, 4, 4), convs_per_stage=(1, 1, 1, 1)))
    out = dec(torch.randn(1, 16, *hw))
    assert out.shape == (1, 3, hw[0] * 8, hw[1] * 8)


def test_decoder_has_no_transposed_convs() -> None:
    dec = A.AdaINDecoder()
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in dec.modules())
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in dec.modules())


def test_save_and_load_round_trip(tmp_path) -> None:
    dec = A.AdaINDecoder(A.DecoderConfig(widths=(16, 8, 8, 4), convs_per_stage=(1, 1, 1, 1)))
    dec.save_pretrained(tmp_path / "m", meta={"note": "test"})
    back = A.AdaINDecoder.from_pretrained(tmp_path / "m")
    x = torch.randn(1, 512, 4, 4)
    assert torch.allclose(dec(x), back(x), atol=2e-2)  # fp16 storage
    assert back.config.widths == (16, 8, 8, 4)


def test_load_refuses_other_versions_and_kinds(tmp_path) -> None:
    folder = A.AdaINDecoder(A.DecoderConfig(widths=(8, 8, 8, 8), convs_per_stage=(1, 1, 1, 1))).save_pretrained(
        tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "format": 99}))
    with pytest.raises(ModelError, match="format 99"):
        A.AdaINDecoder.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "kind": "johnson"}))
    with pytest.raises(ModelError, match="not an AdaIN decoder"):
        A.AdaINDecoder.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.safetensors").write_bytes(b"\x80\x04pickled code is never loaded")
    with pytest.raises(ModelError, match="corrupt"):
        A.AdaINDecoder.from_pretrained(folder)
    with pytest.raises(ModelError, match="not an AdaIN decoder folder"):
        A.AdaINDecoder.from_pretrained(tmp_path / "missing")


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory) -> A.AdaINStylizer:
    """Real encoder, tiny random decoder: tests check the feature-space logic, not the picture."""
    folder = tmp_path_factory.mktemp("dec") / "m"
    torch.manual_seed(0)
    A.AdaINDecoder(A.DecoderConfig(widths=(8, 8, 8, 8), convs_per_stage=(1, 1, 1, 1))).save_pretrained(folder)
    return A.AdaINStylizer(decoder=folder, precision="fp32")


@pytest.fixture()
def captured(stylizer, monkeypatch):
    """Record the features handed to the decoder."""
    seen: list[torch.Tensor] = []
    real = stylizer.decode

    def decode(features):
        seen.append(features.detach().clone())
        return real(features)

    monkeypatch.setattr(stylizer, "decode", decode)
    return seen


def _img(color, size=(64, 48)) -> Image.Image:
    return Image.new("RGB", size, color)


def _noise(seed: int, size=(64, 64)) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(size[1], size[0], 3, generator=g) * 255).byte().numpy())


def test_strength_zero_decodes_the_photo_features(stylizer, captured) -> None:
    from brushwork.image.convert import to_tensor

    photo = _noise(1)
    stylizer.stylize(photo, [_noise(2)], strength=0.0)
    f_c = stylizer._encode(to_tensor(photo))
    assert torch.allclose(captured[0], f_c[A.ENCODER_LAYER].float(), atol=1e-4)


def test_interpolation_is_weighted_mean_of_adain_outputs(stylizer, captured) -> None:
    photo, s1, s2 = _noise(1), _noise(2), _noise(3)
    stylizer.stylize(photo, [s1], strength=1.0)
    stylizer.stylize(photo, [s2], strength=1.0)
    stylizer.stylize(photo, [s1, s2], weights=[0.25, 0.75], strength=1.0)
    # features run to ~2000: float32 rounding of the (equivalent) blended-statistics form is ~1e-3
    assert torch.allclose(captured[2], 0.25 * captured[0] + 0.75 * captured[1], rtol=1e-5, atol=1e-2)


def test_masks_place_styles_by_region(stylizer, captured) -> None:
    photo, s1, s2 = _noise(1), _noise(2), _noise(3)
    left = Image.new("L", (64, 64), 0)
    left.paste(255, (0, 0, 32, 64))
    right = Image.eval(left, lambda v: 255 - v)
    stylizer.stylize(photo, [s1])
    stylizer.stylize(photo, [s2])
    stylizer.stylize(photo, [s1, s2], masks=[left, right])
    a, b, mixed = captured
    assert torch.allclose(mixed[..., :2], a[..., :2], atol=1e-4)  # far left columns: style 1
    assert torch.allclose(mixed[..., -2:], b[..., -2:], atol=1e-4)  # far right columns: style 2


def test_keep_mask_pastes_the_photo(stylizer) -> None:
    photo = _noise(1)
    keep = Image.new("L", (64, 64), 255)
    keep.paste(0, (0, 0, 32, 64))
    out = stylizer.stylize(photo, [_noise(2)], mask=keep).image
    left = torch.from_numpy(np.asarray(out.crop((0, 0, 28, 64)), dtype=np.float32))
    ref = torch.from_numpy(np.asarray(photo.crop((0, 0, 28, 64)), dtype=np.float32))
    assert (left - ref).abs().mean() < 1.0


def test_output_keeps_odd_photo_sizes(stylizer) -> None:
    out = stylizer.stylize(_img((200, 10, 10), (67, 45)), [_noise(2)])
    assert out.image.size == (67, 45)


def test_luminance_mode_keeps_photo_chroma(stylizer) -> None:
    from brushwork.image.color import rgb_to_yiq
    from brushwork.image.convert import to_tensor

    photo = Image.blend(_noise(5), _img((128, 128, 128), (64, 64)), 0.5)  # in-gamut after the luminance swap
    out = stylizer.stylize(photo, [_noise(2)], preserve_color="luminance").image
    iq_out, iq_photo = rgb_to_yiq(to_tensor(out))[:, 1:], rgb_to_yiq(to_tensor(photo))[:, 1:]
    assert (iq_out - iq_photo).abs().mean() < 0.03


def test_bad_input(stylizer) -> None:
    with pytest.raises(ImageError, match="too small"):
        stylizer.stylize(_noise(1), [_img((1, 2, 3), (40, 40))])
    with pytest.raises(ConfigError, match="strength"):
        stylizer.stylize(_noise(1), [_noise(2)], strength=1.5)
    with pytest.raises(ConfigError, match="unknown style"):
        stylizer.stylize(_noise(1), ["starry_nite"])
    with pytest.raises(ConfigError, match="one weight"):
        stylizer.stylize(_noise(1), [_noise(2)], weights=[1, 2])


def test_preset_statistics_are_used(stylizer, captured) -> None:
    from brushwork.styles import find_preset

    stylizer.stylize(_noise(1, (128, 128)), ["starry_night"])
    mean, std = mean_std(captured[0])
    preset = find_preset("starry_night")
    live = std.flatten() > 1.0  # channels the photo never activates stay flat (AdaIN cannot scale zero)
    assert live.float().mean() > 0.5
    assert torch.allclose(mean.flatten()[live], preset.means[A.ENCODER_LAYER].flatten()[live], rtol=1e-2, atol=0.5)
    assert torch.allclose(std.flatten()[live], preset.stds[A.ENCODER_LAYER].flatten()[live], rtol=1e-2, atol=0.5)
