"""Feed-forward nets (johnson / cin): architecture, conditional instance norm, format, stylizer (tiny random nets)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.errors import ConfigError, ImageError, ModelError, ResourceError
from brushwork.methods import feedforward as FF

TINY = {"widths": (4, 8, 8), "n_residual": 1}


def _net(n_styles: int = 1, names: tuple[str, ...] = (), seed: int = 0) -> FF.TransformerNet:
    """A tiny net with random norm tables, so styles differ (fresh ones are all gamma=1, beta=0)."""
    torch.manual_seed(seed)
    net = FF.TransformerNet(FF.TransformerConfig(**TINY, n_styles=n_styles, style_names=names))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, FF.ConditionalInstanceNorm2d):
                m.gamma.uniform_(0.5, 1.5)
                m.beta.normal_(0, 0.3)
    return net.eval()


def _noise(seed: int, size=(40, 32)) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(size[1], size[0], 3, generator=g) * 255).byte().numpy())


@pytest.mark.parametrize("hw", [(8, 8), (13, 17), (21, 10), (32, 48)])
def test_output_keeps_any_size_and_range(hw: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *hw)
    out = _net()(x)
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 1


def test_architecture_has_no_transposed_convs_and_reflects() -> None:
    net = FF.TransformerNet()  # the full-size default
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules())
    norms = [m for m in net.modules() if isinstance(m, FF.ConditionalInstanceNorm2d)]
    assert len(norms) == 3 + 2 * 5 + 2
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) for m in net.modules())
    assert net.config.kind == "johnson" and FF.TransformerConfig(n_styles=3).kind == "cin"


def test_too_small_input_is_refused() -> None:
    with pytest.raises(ImageError, match="too small"):
        _net()(torch.rand(1, 3, 6, 30))


def test_cin_one_hot_equals_the_single_style_net() -> None:
    cin = _net(3)
    x = torch.rand(2, 3, 20, 24)
    for k in range(3):
        single = FF.TransformerNet(FF.TransformerConfig(**TINY))
        state = {n: (v[k : k + 1] if n.endswith((".gamma", ".beta")) else v) for n, v in cin.state_dict().items()}
        single.load_state_dict(state)
        onehot = torch.nn.functional.one_hot(torch.tensor([k]), 3).float()
        assert torch.allclose(cin(x, onehot), single.eval()(x), atol=1e-6)
    # None = the first style
    assert torch.allclose(cin(x), cin(x, torch.tensor([[1.0, 0.0, 0.0]])), atol=1e-6)


def test_cin_blend_interpolates_gamma_and_beta() -> None:
    torch.manual_seed(1)
    norm = FF.ConditionalInstanceNorm2d(5, n_styles=2)
    with torch.no_grad():
        norm.gamma.uniform_(0.5, 2.0)
        norm.beta.normal_()
    x = torch.randn(3, 5, 6, 7) * 2 + 1
    mean, var = x.mean((2, 3), keepdim=True), x.var((2, 3), keepdim=True, unbiased=False)
    normed = (x - mean) / torch.sqrt(var + norm.eps)
    w = torch.tensor([[0.25, 0.75], [1.0, 0.0], [0.5, 0.5]])  # each sample its own blend
    out = norm(x, w)
    gamma, beta = w @ norm.gamma, w @ norm.beta
    assert torch.allclose(out, normed * gamma[:, :, None, None] + beta[:, :, None, None], atol=1e-5)
    # one layer is linear in (gamma, beta): the blend is the weighted mean of the pure styles' outputs
    a = norm(x, torch.tensor([[1.0, 0.0]]).expand(3, -1))
    b = norm(x, torch.tensor([[0.0, 1.0]]).expand(3, -1))
    assert torch.allclose(out[0], 0.25 * a[0] + 0.75 * b[0], atol=1e-5)
    # with one style it is affine instance norm
    inorm = torch.nn.InstanceNorm2d(5, affine=True)
    one = FF.ConditionalInstanceNorm2d(5, n_styles=1)
    with torch.no_grad():
        one.gamma.copy_(norm.gamma[:1])
        one.beta.copy_(norm.beta[:1])
        inorm.weight.copy_(norm.gamma[0])
        inorm.bias.copy_(norm.beta[0])
    assert torch.allclose(one(x), inorm(x), atol=1e-5)
    with pytest.raises(ConfigError, match=r"\(batch, 2\)"):
        norm(x, torch.ones(3, 3))


def test_config_validation() -> None:
    assert FF.TransformerConfig(n_styles=2).style_names == ("style1", "style2")
    with pytest.raises(ConfigError, match="2 style names given for 3"):
        FF.TransformerConfig(n_styles=3, style_names=("a", "b"))
    with pytest.raises(ConfigError, match="used twice"):
        FF.TransformerConfig(n_styles=2, style_names=("a", "a"))
    with pytest.raises(ConfigError, match="widths"):
        FF.TransformerConfig(widths=(4, 8))


@pytest.mark.parametrize("n_styles", [1, 3])
def test_save_and_load_round_trip(tmp_path, n_styles: int) -> None:
    names = tuple(f"s{i}" for i in range(n_styles))
    net = _net(n_styles, names)
    folder = net.save_pretrained(tmp_path / "m", meta={"note": "test"})
    raw = json.loads((folder / "config.json").read_text())
    assert raw["kind"] == ("johnson" if n_styles == 1 else "cin") and raw["note"] == "test"
    back = FF.TransformerNet.from_pretrained(folder)
    assert back.style_names == names and back.config.widths == (4, 8, 8)
    x = torch.rand(1, 3, 16, 20)
    w = torch.full((1, n_styles), 1.0 / n_styles)
    assert torch.allclose(net(x, w), back(x, w), atol=1e-2)  # fp16 storage
    from safetensors.torch import load_file

    assert all(v.dtype == torch.float16 for v in load_file(str(folder / "model.safetensors")).values())


def test_load_refuses_other_versions_kinds_and_corrupt_files(tmp_path) -> None:
    folder = _net(2).save_pretrained(tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    for bad, match in (({"format": 99}, "format 99"), ({"kind": "adain"}, "'adain' model, not a feed-forward"),
                       ({"kind": "johnson"}, "says 'johnson' but holds 2 style"),
                       ({"style_names": ["a"]}, "describes no valid net")):
        (folder / "config.json").write_text(json.dumps({**cfg, **bad}))
        with pytest.raises(ModelError, match=match) as info:
            FF.TransformerNet.from_pretrained(folder)
        assert "\n" not in str(info.value)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        FF.TransformerNet.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**cfg, "widths": [4, 8, 16]}))
    with pytest.raises(ModelError, match="corrupt or mismatched"):
        FF.TransformerNet.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "model.safetensors").write_bytes(b"\x80\x04pickled code is never loaded")
    with pytest.raises(ModelError, match="corrupt"):
        FF.TransformerNet.from_pretrained(folder)
    with pytest.raises(ModelError, match="not a feed-forward model folder"):
        FF.TransformerNet.from_pretrained(tmp_path / "missing")


def test_adain_decoder_refuses_a_feedforward_folder(tmp_path) -> None:
    from brushwork.methods.adain import AdaINDecoder

    folder = _net().save_pretrained(tmp_path / "m")
    with pytest.raises(ModelError, match="'johnson' model, not an AdaIN decoder"):
        AdaINDecoder.from_pretrained(folder)


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory) -> FF.FeedForwardStylizer:
    folder = _net(2, ("starry_night", "the_scream")).save_pretrained(tmp_path_factory.mktemp("ff") / "m")
    return FF.FeedForwardStylizer(folder, precision="fp32")


def test_stylizer_loads_and_keeps_odd_sizes(stylizer) -> None:
    assert stylizer.style_names == ("starry_night", "the_scream") and stylizer.kind == "cin"
    res = stylizer.stylize(_noise(1, (45, 31)), "the_scream")
    assert res.image.size == (45, 31) and res.size == (45, 31) and res.styles == {"the_scream": 1.0}
    assert not any(p.requires_grad for p in stylizer.net.parameters())


def test_strength_zero_returns_the_photo(stylizer) -> None:
    photo = _noise(2)
    out = stylizer.stylize(photo, {"starry_night": 1.0}, strength=0.0).image
    assert np.array_equal(np.asarray(out), np.asarray(photo))


def test_strength_blends_in_pixels(stylizer) -> None:
    photo = _noise(2)
    full = np.asarray(stylizer.stylize(photo, "starry_night").image, dtype=np.float32)
    half = np.asarray(stylizer.stylize(photo, "starry_night", strength=0.5).image, dtype=np.float32)
    assert np.abs(half - (0.5 * full + 0.5 * np.asarray(photo, dtype=np.float32))).max() <= 1.0


def test_blend_weights_are_normalised(stylizer) -> None:
    from brushwork.image.convert import to_tensor

    photo = _noise(3)
    res = stylizer.stylize(photo, [("starry_night", 1), ("the_scream", 2), ("the_scream", 1)])
    assert res.styles == {"starry_night": 0.25, "the_scream": 0.75}
    ref = stylizer.transform(to_tensor(photo), torch.tensor([[0.25, 0.75]]))
    assert (to_tensor(res.image) - ref).abs().max() <= 1 / 255 + 1e-6
    with_none = stylizer.stylize(photo)
    assert with_none.styles == {"starry_night": 1.0} and "holds 2 styles" in with_none.notes[0]


def test_mask_keeps_the_photo_where_black(stylizer) -> None:
    photo = _noise(4, (64, 64))
    keep = Image.new("L", (64, 64), 255)
    keep.paste(0, (0, 0, 32, 64))
    out = np.asarray(stylizer.stylize(photo, "the_scream", mask=keep).image, dtype=np.float32)
    ref = np.asarray(photo, dtype=np.float32)
    assert np.abs(out[:, :30] - ref[:, :30]).max() <= 1.0  # left of the feathered edge: the photo
    assert np.abs(out[:, 34:] - ref[:, 34:]).mean() > 10  # right: styled


def test_luminance_mode_keeps_photo_chroma(stylizer) -> None:
    from brushwork.image.color import rgb_to_yiq
    from brushwork.image.convert import to_tensor

    photo = Image.blend(_noise(5), Image.new("RGB", (40, 32), (128, 128, 128)), 0.5)
    out = stylizer.stylize(photo, "the_scream", preserve_color="luminance").image
    iq_out, iq_photo = rgb_to_yiq(to_tensor(out))[:, 1:], rgb_to_yiq(to_tensor(photo))[:, 1:]
    assert (iq_out - iq_photo).abs().mean() < 0.03


def test_bf16_is_close_to_fp32(stylizer) -> None:
    from brushwork.image.convert import to_tensor

    bf = FF.FeedForwardStylizer(stylizer.net, precision="bf16")
    x, w = to_tensor(_noise(6)), torch.tensor([[0.5, 0.5]])
    assert (bf.transform(x, w) - stylizer.transform(x, w)).abs().mean() < 0.02


def test_bad_input(stylizer) -> None:
    with pytest.raises(ConfigError, match=r"unknown style 'starry_nite'.*did you mean 'starry_night'"):
        stylizer.stylize(_noise(1), "starry_nite")
    with pytest.raises(ConfigError, match=r"unknown style 'mona'.*it holds: starry_night, the_scream"):
        stylizer.stylize(_noise(1), {"mona": 1.0})
    with pytest.raises(ConfigError, match="sum to 0"):
        stylizer.stylize(_noise(1), {"starry_night": 0.0})
    with pytest.raises(ConfigError, match=">= 0"):
        stylizer.stylize(_noise(1), [("starry_night", -1.0)])
    with pytest.raises(ConfigError, match="strength"):
        stylizer.stylize(_noise(1), strength=1.5)
    with pytest.raises(ConfigError, match="luminance"):
        stylizer.stylize(_noise(1), preserve_color="match")
    with pytest.raises(ConfigError, match="at least 32"):
        stylizer.stylize(_noise(1), size=16)
    with pytest.raises(ImageError, match="too small"):
        stylizer.stylize(_noise(1, (40, 5)))
    with pytest.raises(ResourceError, match="smaller --size"):
        stylizer.stylize(_noise(1), memory_limit=1000)
    with pytest.raises(ModelError, match="not a feed-forward model folder"):
        FF.FeedForwardStylizer("/nonexistent/model")


def test_logits_are_the_output_before_its_sigmoid() -> None:
    torch.manual_seed(0)
    net = FF.TransformerNet(FF.TransformerConfig(widths=(4, 8, 8), n_residual=1)).eval()
    x = torch.rand(1, 3, 37, 45)  # not a multiple of 4: padded and cropped the same way on both paths
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(net(x, logits=True)), net(x), atol=1e-6)


def test_end_kernel_sets_the_full_resolution_convolutions() -> None:
    net = FF.TransformerNet(FF.TransformerConfig(widths=(4, 8, 8), n_residual=1, end_kernel=5)).eval()
    assert net.down[0].conv.kernel_size == (5, 5) and net.out[1].kernel_size == (5, 5)
    x = torch.rand(1, 3, 37, 41)
    assert net(x).shape == x.shape
    assert FF.TransformerConfig().end_kernel == 9  # Johnson's, and what configs saved before the field meant
    with pytest.raises(ConfigError, match="odd"):
        FF.TransformerConfig(end_kernel=4)
