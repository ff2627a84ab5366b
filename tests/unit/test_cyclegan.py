"""CycleGAN nets and inference: generator shapes and padding, the 70x70 PatchGAN, the model folder, both
directions through the stylizer, the CLI (stylize, batch, video), ONNX and INT8, the image pool, and the
collection metric. Tiny random nets and generated pictures only."""

from __future__ import annotations

import json

import av
import media
import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli.main import main
from brushwork.errors import ConfigError, ModelError
from brushwork.export.cyclegan import OnnxCycleGAN
from brushwork.inference.cyclegan import OrtCycleGAN, resolve_cyclegan, reverse_path
from brushwork.methods.cyclegan import (
    CycleGANConfig,
    CycleGANNet,
    CycleGANStylizer,
    PatchDiscriminator,
    receptive_field,
)
from brushwork.metrics import CollectionEvaluator, collection_distance
from brushwork.pipeline import ImageStylizer, StylizeOptions
from brushwork.runtime import inference_threads
from brushwork.training.cyclegan import ImagePool

TINY = CycleGANConfig(ngf=4, n_blocks=1, names=("stripes", "photo"))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with inference_threads(1):  # a 2-core machine shared with training jobs
        yield


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cyclegan") / "tiny"
    CycleGANNet(TINY).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def photo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "scene.png"
    media.scene((90, 70)).save(path)
    return path


@pytest.mark.parametrize("cfg", [TINY, CycleGANConfig(ngf=4, n_blocks=1, upsample="transposed"),
                                 CycleGANConfig(generator="unet", ngf=4, depth=3),
                                 CycleGANConfig(generator="unet", ngf=4, depth=6)])
def test_generators_keep_any_size_in_0_1(cfg) -> None:
    net = CycleGANNet(cfg).eval()
    for h, w in ((37, 50), (64, 64), (9, 12)):  # odd sizes are padded to the generator's multiple, then cropped
        with torch.no_grad():
            y = net(torch.rand(1, 3, h, w))
        assert y.shape == (1, 3, h, w) and float(y.min()) >= 0 and float(y.max()) <= 1


def test_unet_skips_reach_the_output() -> None:
    """The first level's features go straight to the last layer: a change at one pixel moves the output there."""
    net = CycleGANNet(CycleGANConfig(generator="unet", ngf=4, depth=3)).eval()
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    net(x)[0, :, 16, 16].sum().backward()
    assert float(x.grad[0, :, 16, 16].abs().sum()) > 0


def test_patchgan_judges_70_px_patches() -> None:
    assert receptive_field() == 70
    d = PatchDiscriminator(ndf=4)
    for i, layer in enumerate(d.model):  # instance norm's statistics are global: without it, only the patch counts
        if isinstance(layer, torch.nn.InstanceNorm2d):
            d.model[i] = torch.nn.Identity()
    x = torch.rand(1, 3, 160, 160, requires_grad=True)
    out = d(x)
    assert out.shape[:2] == (1, 1)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = np.nonzero(x.grad[0].abs().sum(0).numpy())
    assert np.ptp(rows) + 1 <= 70 and np.ptp(cols) + 1 <= 70 and np.ptp(rows) + 1 >= 60


def test_model_folder_round_trip_and_refusals(model, tiny_cin, tmp_path) -> None:
    net = CycleGANNet.from_pretrained(model)
    saved = json.loads((model / "config.json").read_text())
    assert net.config == TINY and saved["kind"] == "cyclegan" and saved["style_names"] == ["stripes", "photo"]
    with pytest.raises(ModelError, match="holds a 'cin' model, not a cyclegan one"):
        CycleGANNet.from_pretrained(tiny_cin)
    assert resolve_cyclegan(str(model)) == model
    with pytest.raises(ConfigError, match="not a CycleGAN model folder"):
        resolve_cyclegan("no_such_model")
    bad = tmp_path / "bad"
    CycleGANNet(TINY).save_pretrained(bad)
    cfg = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**cfg, "generator": "vit"}))
    with pytest.raises(ModelError, match="describes no valid CycleGAN"):
        CycleGANNet.from_pretrained(bad)


def test_stylizer_runs_either_direction(model, photo_file) -> None:
    st = CycleGANStylizer(model, precision="fp32")
    forward, back = st.stylize(photo_file), st.stylize(photo_file, "photo")
    assert forward.styles == {"stripes": 1.0} and back.styles == {"photo": 1.0} and not forward.notes
    net = CycleGANNet.from_pretrained(model)
    x = torch.from_numpy(np.asarray(Image.open(photo_file).convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]
    with torch.no_grad():
        expect_f, expect_b = net(x), net(x, torch.tensor([[0.0, 1.0]]))
    for result, expect in ((forward, expect_f), (back, expect_b)):
        got = np.asarray(result.image, np.float32) / 255
        assert np.abs(got - expect[0].permute(1, 2, 0).numpy()).max() < 2 / 255
    assert np.array_equal(np.asarray(st.stylize(photo_file, strength=0).image),
                          np.asarray(Image.open(photo_file).convert("RGB")))
    with pytest.raises(ConfigError, match="one way at a time"):
        st.stylize(photo_file, {"stripes": 0.5, "photo": 0.5})


def test_cli_stylize_both_directions_and_refusals(model, photo_file, tmp_path, capfd) -> None:
    out = tmp_path / "out.png"
    assert main(["stylize", str(photo_file), "--model", str(model), "-o", str(out), "--json"]) == 0
    info = json.loads(capfd.readouterr().out)
    assert info["method"] == "cyclegan" and info["styles"] == {"stripes": 1.0} and Image.open(out).size == (90, 70)
    for extra in (["--reverse"], ["-s", "photo"]):
        assert main(["stylize", str(photo_file), "--model", str(model), "-o", str(out), "--json", *extra]) == 0
        assert json.loads(capfd.readouterr().out)["styles"] == {"photo": 1.0}
    for extra, message in ((["-s", "starry_night"], "styles are its directions"),
                           (["--reverse", "-s", "stripes"], "--reverse means -s photo"),
                           (["-s", "stripes:0.5,photo:0.5"], "one way at a time"),
                           (["--mask-for", "1", str(photo_file), "-s", "stripes"], "--mask-for"),
                           (["--preserve-color", "match"], "--preserve-color match")):
        code = main(["stylize", str(photo_file), "--model", str(model), "-o", str(out), *extra])
        err = capfd.readouterr().err.strip()
        assert code == 2 and err.startswith("brushwork: error:") and len(err.splitlines()) == 1, (extra, err)
        assert message in err, (extra, err)
    code = main(["stylize", str(photo_file), "-s", "starry_night", "--reverse", "-o", str(out)])
    assert code == 2 and "cyclegan" in capfd.readouterr().err
    assert main(["demo", "--model", str(model), "-o", str(out)]) == 0
    assert "with 'stripes' (cyclegan)" in capfd.readouterr().out


def test_batch_and_video_run_it_through_the_registry(model, photo_file, tmp_path, capfd) -> None:
    st = ImageStylizer(StylizeOptions(model=str(model), styles=[("photo", 1.0)], precision="fp32"))
    assert st.method == "cyclegan" and st.styles == [("photo", 1.0)]
    assert st(Image.open(photo_file)).size == (90, 70)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        media.scene((64, 48), seed=i).save(photos / f"p{i}.png")
    assert main(["batch", str(photos), "-o", str(tmp_path / "styled"), "--model", str(model), "-q"]) == 0
    assert len(list((tmp_path / "styled").rglob("*.png"))) == 2
    clip = tmp_path / "clip.mp4"
    frame = np.asarray(media.scene((96, 48)))
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(4):
            for p in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:, 4 * i:4 * i + 64]),
                                                              format="rgb24")):
                out.mux(p)
        for p in stream.encode(None):
            out.mux(p)
    capfd.readouterr()
    assert main(["video", str(clip), "-o", str(tmp_path / "v.mp4"), "--model", str(model), "--json"]) == 0
    info = json.loads(capfd.readouterr().out)
    assert info["method"] == "cyclegan" and info["frames"] == 4


def test_onnx_export_matches_torch_and_quantizes(model, photo_file, tmp_path, capfd) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "onnx", "--model", str(model), "-o", str(out), "--json"]) == 0
    files = json.loads(capfd.readouterr().out)["files"]
    assert files == [str(out), str(reverse_path(out))]
    torch_st, onnx_st = CycleGANStylizer(model, precision="fp32"), OnnxCycleGAN(out)
    for style in ("stripes", "photo"):
        a = np.asarray(torch_st.stylize(photo_file, style).image, np.float32)
        b = np.asarray(onnx_st.stylize(photo_file, style).image, np.float32)
        assert np.abs(a - b).mean() < 0.5
    q = tmp_path / "m.int8.onnx"
    assert main(["export", "quantize", str(out), "-o", str(q), "--calibrate", str(photo_file)]) == 0
    assert reverse_path(q).is_file()
    c = np.asarray(OnnxCycleGAN(q).stylize(photo_file, "photo").image, np.float32)
    assert np.abs(c - np.asarray(torch_st.stylize(photo_file, "photo").image, np.float32)).mean() < 12
    for style in ("stripes", "photo"):  # the numpy runtime (no torch) gives the torch-wrapped one's pictures
        d = np.asarray(OrtCycleGAN(q).stylize(photo_file, style, strength=0.7).image, np.float32)
        e = np.asarray(OnnxCycleGAN(q).stylize(photo_file, style, strength=0.7).image, np.float32)
        assert d.shape == e.shape and np.abs(d - e).mean() < 0.5, style
    reverse_path(q).unlink()
    with pytest.raises(ConfigError, match="holds only the stripes direction"):
        OnnxCycleGAN(q).stylize(photo_file, "photo")
    with pytest.raises(ConfigError, match="holds only the stripes direction"):
        OrtCycleGAN(q).stylize(photo_file, "photo")
    capfd.readouterr()
    code = main(["stylize", str(photo_file), "--method", "cyclegan", "--model", str(q), "-o", str(tmp_path / "o.png")])
    assert code == 0, capfd.readouterr().err
    assert all(f.stat().st_size < 1e6 for f in (out, reverse_path(out), q))


def test_image_pool_keeps_the_last_fakes_and_resumes_exactly() -> None:
    pool = ImagePool(3, seed=0)
    first = [pool.query(torch.full((1, 1, 2, 2), float(i))) for i in range(3)]
    assert [float(t[0, 0, 0, 0]) for t in first] == [0, 1, 2] and len(pool.images) == 3  # filling: returned as is
    seen = {float(pool.query(torch.full((1, 1, 2, 2), 10.0 + i))[0, 0, 0, 0]) for i in range(20)}
    assert seen & {0.0, 1.0, 2.0} and any(v >= 10 for v in seen)  # half the time an older fake comes back
    state = pool.state()
    twin = ImagePool(3, seed=99)
    twin.load_state(state, torch.device("cpu"))
    a = [float(pool.query(torch.full((1, 1, 2, 2), 50.0 + i))[0, 0, 0, 0]) for i in range(10)]
    b = [float(twin.query(torch.full((1, 1, 2, 2), 50.0 + i))[0, 0, 0, 0]) for i in range(10)]
    assert a == b
    assert ImagePool(0, seed=0).query(torch.ones(2, 1, 2, 2)).shape == (2, 1, 2, 2)


def test_collection_distance_ranks_a_collection_painting_above_the_photo() -> None:
    paintings = [media.swirl_painting((96, 64), seed=s) for s in range(3)]
    photo = media.scene((96, 64))
    ev = CollectionEvaluator(paintings[1:], size=64)
    same = ev.score(photo, photo)
    assert same.collection_vs_photo == pytest.approx(1.0) and same.content == pytest.approx(0.0, abs=1e-6)
    assert same.palette_vs_photo == pytest.approx(1.0)
    held = ev.score(paintings[0], photo)  # a painting of the same kind the evaluator never saw
    assert held.collection_vs_photo < 0.5 and held.palette_vs_photo < 1 and held.content > 0.3
    mid = ev.score(Image.blend(photo, paintings[0], 0.5), photo)
    assert held.collection < mid.collection < same.collection
    assert collection_distance(photo, photo, paintings[1:], size=64).as_dict() == pytest.approx(same.as_dict())


def _shipped_collections() -> list[str]:
    from brushwork.registry import shipped_models

    return [m.name for m in shipped_models() if m.kind == "cyclegan"]


def test_the_monet_model_is_shipped() -> None:
    assert "monet" in _shipped_collections()


@pytest.mark.parametrize("name", _shipped_collections())
def test_a_shipped_collection_model_matches_its_card_and_paints_a_photo(name: str) -> None:
    """A shipped photo -> painter model: its checksums (weights, INT8 graphs made from these weights), its
    provenance, and on a generated landscape a visible change that keeps the picture's layout, INT8 close."""
    import hashlib

    import onnx

    from brushwork.registry import shipped_models

    (model,) = [m for m in shipped_models() if m.name == name]
    assert model.kind == "cyclegan" and model.styles == (name, "photo") and model.bytes < 15e6
    card = json.loads((model.path / "MODEL.json").read_text())
    for file, key in (("model.int8.onnx", "sha256"), ("model.int8.reverse.onnx", "reverse_sha256")):
        assert hashlib.sha256((model.path / file).read_bytes()).hexdigest() == card["int8"][key]
    assert card["int8"]["source_sha256"] == card["sha256"]  # re-quantize whenever the weights change
    assert card["commands"][0].startswith("brushwork train cyclegan") and card["steps"] >= 1000
    assert card["data"]["held_out_photos_glob"] == ["*5.jpg"] and "training_continues" in card
    scene = media.scene((256, 192), seed=7)
    torch_out = CycleGANStylizer(model.path, precision="fp32").stylize(scene).image
    a, b = np.asarray(scene, np.float32), np.asarray(torch_out, np.float32)
    assert np.abs(a - b).mean() > 8  # repainted
    assert np.corrcoef(a.mean(2).ravel(), b.mean(2).ravel())[0, 1] > 0.6  # the layout stays
    c = np.asarray(OrtCycleGAN(model.path / "model.int8.onnx").stylize(scene, name).image, np.float32)
    assert np.abs(c - b).mean() < 5  # the last three layers in float: the same picture (2.4/255 when made)
    graph = onnx.load(str(model.path / "model.int8.onnx")).graph
    floats = {i.name for i in graph.initializer if i.data_type == 1}
    assert [n.input[1] in floats for n in graph.node if n.op_type == "Conv"][-4:] == [False, True, True, True]


def test_auto_engine_runs_the_shipped_int8_export(monkeypatch) -> None:
    """With onnxruntime installed, a shipped CycleGAN's default engine is its INT8 export (the same picture as
    torch's, faster); ``--engine torch`` still gets the torch generator."""
    from brushwork.methods.registry import Request, get_method

    method = get_method("cyclegan")
    loaded = method.load(Request(model="monet"))[0]
    assert isinstance(loaded, OrtCycleGAN)
    assert not isinstance(method.load(Request(model="monet", engine="torch"))[0], OrtCycleGAN)
