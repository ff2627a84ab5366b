"""StyleBank net: architecture, branches, blends and region weights, incremental banks, format, stylizer (tiny nets)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.errors import ConfigError, ImageError, ModelError
from brushwork.methods import stylebank as SB
from brushwork.methods.feedforward import FeedForwardResult, TransformerNet

TINY = {"widths": (4, 8, 8), "bank_convs": 2}


def _net(names: tuple[str, ...] = ("a", "b"), seed: int = 0) -> SB.StyleBankNet:
    """A tiny net whose norm affines are random, so banks (and styles) differ."""
    torch.manual_seed(seed)
    net = SB.StyleBankNet(SB.StyleBankConfig(**TINY, style_names=names))
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(".gamma"):
                p.uniform_(0.5, 1.5)
            elif name.endswith(".beta"):
                p.normal_(0, 0.3)
    return net.eval()


def _noise(seed: int, size=(40, 32)) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(size[1], size[0], 3, generator=g) * 255).byte().numpy())


def _decoder_input(net: SB.StyleBankNet, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """The features the decoder receives for ``net(x, **kwargs)``."""
    seen = []
    handle = net.decoder.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        net(x, **kwargs)
    finally:
        handle.remove()
    return seen[0]


@pytest.mark.parametrize("hw", [(8, 8), (13, 17), (21, 10), (32, 48)])
def test_output_keeps_any_size_and_range(hw: tuple[int, int]) -> None:
    x = torch.rand(2, 3, *hw)
    net = _net()
    for out in (net(x), net(x, identity=True), net(x, torch.tensor([[0.3, 0.7]]))):
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_architecture() -> None:
    net = SB.StyleBankNet(SB.StyleBankConfig(style_names=("a", "b", "c")))  # the paper-sized default
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules())
    assert len(net.banks) == 3 and net.config.kind == "stylebank"
    z = net.encoder(torch.rand(1, 3, 64, 48))
    assert z.shape == (1, 128, 16, 12)  # 1/4 resolution at the bottleneck width
    convs = [m for m in net.banks[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [(128, 128, (3, 3))] * 2
    assert net.banks[0](z).shape == z.shape


def test_branches_compose_encoder_bank_decoder() -> None:
    net = _net(("a", "b", "c"))
    x = torch.rand(2, 3, 24, 32)
    z = net.encoder(x)
    dec = lambda f: torch.sigmoid(net.decoder(f))  # noqa: E731
    assert torch.allclose(net(x, identity=True), dec(z), atol=1e-6)
    for k in range(3):
        onehot = torch.nn.functional.one_hot(torch.tensor([k]), 3).float()
        assert torch.allclose(net(x, onehot), dec(net.banks[k](z)), atol=1e-6)
    assert torch.allclose(net(x), net(x, torch.tensor([[1.0, 0.0, 0.0]])), atol=1e-6)  # None = the first style
    # a blend is the weighted sum of the banks' outputs, per sample
    w = torch.tensor([[0.25, 0.75, 0.0], [0.0, 0.5, 0.5]])
    mixed = torch.stack([sum(w[i, k] * net.banks[k](z[i : i + 1])[0] for k in range(3)) for i in range(2)])
    assert torch.allclose(_decoder_input(net, x, style_weights=w), mixed, atol=1e-5)
    assert torch.allclose(net(x, w), dec(mixed), atol=1e-5)


def test_region_weights_pick_a_bank_per_region() -> None:
    net = _net()
    x = torch.rand(1, 3, 30, 40)  # padded to 32x40: features 8x10
    left = torch.zeros(1, 1, 30, 40)
    left[..., :20] = 1.0
    regions = torch.cat([left, 1 - left], dim=1)
    f = _decoder_input(net, x, style_weights=regions)
    fa, fb = (_decoder_input(net, x, style_weights=torch.tensor(w)) for w in ([[1.0, 0.0]], [[0.0, 1.0]]))
    assert torch.allclose(f[..., :5], fa[..., :5], atol=1e-6) and torch.allclose(f[..., 5:], fb[..., 5:], atol=1e-6)
    # constant per-pixel weights are the per-image blend
    flat = torch.tensor([[0.4, 0.6]])
    assert torch.allclose(net(x, flat[:, :, None, None].expand(1, 2, 30, 40)), net(x, flat), atol=1e-5)


def test_bad_weights_and_sizes() -> None:
    net = _net()
    with pytest.raises(ConfigError, match=r"\(batch, 2\) or \(batch, 2, H, W\)"):
        net(torch.rand(1, 3, 16, 16), torch.ones(1, 3))
    with pytest.raises(ConfigError, match="all 0"):
        net(torch.rand(1, 3, 16, 16), torch.zeros(1, 2))
    with pytest.raises(ImageError, match="too small"):
        net(torch.rand(1, 3, 6, 30))


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="at least one style"):
        SB.StyleBankConfig(style_names=())
    with pytest.raises(ConfigError, match="used twice"):
        SB.StyleBankConfig(style_names=("a", "a"))
    with pytest.raises(ConfigError, match="widths"):
        SB.StyleBankConfig(widths=(4, 8))
    with pytest.raises(ConfigError, match="at least one conv"):
        SB.StyleBankConfig(bank_convs=0)


def test_add_style_appends_a_bank_and_keeps_the_others() -> None:
    net = _net()
    x = torch.rand(1, 3, 16, 20)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    outs = [net(x, torch.tensor(w)) for w in ([[1.0, 0.0]], [[0.0, 1.0]])]
    assert net.add_style("c") == 2
    assert net.style_names == ("a", "b", "c") and net.config.n_styles == 3 and len(net.banks) == 3
    for k, v in before.items():
        assert torch.equal(net.state_dict()[k], v), k
    assert torch.allclose(net(x, torch.tensor([[1.0, 0.0, 0.0]])), outs[0])
    assert torch.allclose(net(x, torch.tensor([[0.0, 1.0, 0.0]])), outs[1])
    with pytest.raises(ConfigError, match="already holds a style named 'a'"):
        net.add_style("a")


def test_a_frozen_autoencoder_gets_no_gradient_and_builds_no_encoder_graph() -> None:
    net = _net()
    for p in net.parameters():
        p.requires_grad_(False)
    k = net.add_style("new")
    x = torch.rand(2, 3, 16, 16)
    z = net.encoder(x)
    assert z.grad_fn is None  # nothing to backpropagate through in the encoder
    net(x, torch.tensor([[0.0, 0.0, 1.0]])).mean().backward()
    assert all(p.grad is None for n, p in net.named_parameters() if not n.startswith(f"banks.{k}."))
    assert all(p.grad is not None for p in net.banks[k].parameters())


def test_save_and_load_round_trip(tmp_path) -> None:
    net = _net(("starry", "scream"))
    folder = net.save_pretrained(tmp_path / "m", meta={"note": "test"})
    raw = json.loads((folder / "config.json").read_text())
    assert raw["kind"] == "stylebank" and raw["format"] == 1 and raw["note"] == "test"
    assert raw["style_names"] == ["starry", "scream"] and raw["widths"] == [4, 8, 8]
    back = SB.StyleBankNet.from_pretrained(folder)
    assert back.style_names == ("starry", "scream") and back.config.widths == (4, 8, 8) and not back.training
    x, w = torch.rand(1, 3, 16, 20), torch.tensor([[0.5, 0.5]])
    assert torch.allclose(net(x, w), back(x, w), atol=1e-2)  # fp16 storage
    from safetensors.torch import load_file

    stored = load_file(str(folder / "model.safetensors"))
    assert all(v.dtype == torch.float16 for v in stored.values())
    # fp16 -> float32 -> fp16 is exact: saving a loaded net changes no bit
    again = load_file(str(back.save_pretrained(tmp_path / "again") / "model.safetensors"))
    assert stored.keys() == again.keys() and all(torch.equal(stored[k], again[k]) for k in stored)


def test_load_refuses_other_versions_kinds_and_corrupt_files(tmp_path) -> None:
    folder = _net().save_pretrained(tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    for bad, match in (({"format": 99}, "format 99"), ({"kind": "cin"}, "'cin' model, not a StyleBank"),
                       ({"style_names": []}, "describes no valid net"),
                       ({"style_names": ["a", "b", "c"]}, "corrupt or mismatched"),
                       ({"widths": [4, 8, 16]}, "corrupt or mismatched")):
        (folder / "config.json").write_text(json.dumps({**cfg, **bad}))
        with pytest.raises(ModelError, match=match) as info:
            SB.StyleBankNet.from_pretrained(folder)
        assert "\n" not in str(info.value)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        SB.StyleBankNet.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="'stylebank' model, not a feed-forward"):
        TransformerNet.from_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"\x80\x04pickled code is never loaded")
    with pytest.raises(ModelError, match="corrupt"):
        SB.StyleBankNet.from_pretrained(folder)
    with pytest.raises(ModelError, match="not a StyleBank model folder"):
        SB.StyleBankNet.from_pretrained(tmp_path / "missing")


@pytest.fixture(scope="module")
def stylizer(tmp_path_factory) -> SB.StyleBankStylizer:
    folder = _net(("starry_night", "the_scream")).save_pretrained(tmp_path_factory.mktemp("sb") / "m")
    return SB.StyleBankStylizer(folder, precision="fp32")


def test_stylizer_has_the_feedforward_interface(stylizer) -> None:
    assert stylizer.style_names == ("starry_night", "the_scream") and stylizer.kind == "stylebank"
    assert not any(p.requires_grad for p in stylizer.net.parameters())
    res = stylizer.stylize(_noise(1, (45, 31)), "the_scream")
    assert isinstance(res, FeedForwardResult)
    assert res.image.size == (45, 31) and res.size == (45, 31) and res.styles == {"the_scream": 1.0}
    blend = stylizer.stylize(_noise(1), [("starry_night", 1), ("the_scream", 3)])
    assert blend.styles == {"starry_night": 0.25, "the_scream": 0.75}
    photo = _noise(2)
    same = stylizer.stylize(photo, strength=0.0)
    assert np.array_equal(np.asarray(same.image), np.asarray(photo)) and "holds 2 styles" in same.notes[0]
    with pytest.raises(ConfigError, match="did you mean 'starry_night'"):
        stylizer.stylize(photo, "starry_nite")
    with pytest.raises(ModelError, match="not a StyleBank model folder"):
        SB.StyleBankStylizer("/nonexistent/model")


def test_stylizer_takes_a_net_and_region_weights(stylizer) -> None:
    from brushwork.image.convert import to_tensor

    direct = SB.StyleBankStylizer(_net(("starry_night", "the_scream")), precision="fp32")
    x = to_tensor(_noise(3, (32, 32)))
    regions = torch.zeros(1, 2, 32, 32)
    regions[:, 0, :, :16], regions[:, 1, :, 16:] = 1.0, 1.0
    out = direct.transform(x, regions)
    assert out.shape == x.shape and not torch.allclose(out, direct.transform(x, torch.tensor([[1.0, 0.0]])))
    # the saved (fp16) and in-memory nets agree
    assert (stylizer.transform(x, regions) - out).abs().max() < 0.02


def test_stylizer_for_picks_by_kind(tmp_path) -> None:
    from brushwork.methods.feedforward import FeedForwardStylizer, TransformerConfig

    sb = _net().save_pretrained(tmp_path / "sb")
    ff = TransformerNet(TransformerConfig(widths=(4, 8, 8), n_residual=1)).save_pretrained(tmp_path / "ff")
    assert isinstance(SB.stylizer_for(sb, precision="fp32"), SB.StyleBankStylizer)
    got = SB.stylizer_for(ff, precision="fp32")
    assert type(got) is FeedForwardStylizer and got.kind == "johnson"
    with pytest.raises(ModelError, match="not a feed-forward model folder"):
        SB.stylizer_for(tmp_path / "missing")
