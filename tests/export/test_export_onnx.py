"""ONNX export: every family matches PyTorch on onnxruntime, INT8 stays close, the CLI wires it up."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from PIL import Image

from brushwork.cli.main import main
from brushwork.errors import ConfigError, ModelError
from brushwork.export.onnx import (
    OnnxAdaIN,
    OnnxFeedForward,
    export_adain,
    export_feedforward,
    read_meta,
)
from brushwork.export.quantize import quantize
from brushwork.methods.adain import AdaINDecoder, AdaINStylizer, DecoderConfig
from brushwork.methods.feedforward import TransformerConfig, TransformerNet
from brushwork.methods.stylebank import StyleBankConfig, StyleBankNet, stylizer_for


def _diff(a: Image.Image, b: Image.Image) -> np.ndarray:
    return np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32))


@pytest.fixture(scope="module")
def photo(media_files) -> Image.Image:
    return Image.open(media_files.photo).convert("RGB")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random nets of each feed-forward kind: parity is about the graph, not the picture."""
    root = tmp_path_factory.mktemp("ff")
    torch.manual_seed(0)
    TransformerNet(TransformerConfig(widths=(4, 8, 8), n_residual=1)).save_pretrained(root / "johnson")
    TransformerNet(TransformerConfig(widths=(4, 8, 8), n_residual=1, n_styles=2,
                                     style_names=("waves", "stars"))).save_pretrained(root / "cin")
    StyleBankNet(StyleBankConfig(widths=(4, 8, 8), style_names=("waves", "stars"))).save_pretrained(root / "bank")
    TransformerNet(TransformerConfig(widths=(6, 8, 8), n_residual=1, n_styles=2, end_kernel=3, subpixel=True,
                                     style_names=("waves", "stars"))).save_pretrained(root / "subpixel")
    return {k: root / k for k in ("johnson", "cin", "bank", "subpixel")}


@pytest.mark.parametrize("kind", ["johnson", "cin", "bank", "subpixel"])
def test_feedforward_export_matches_torch(kind, models, photo, tmp_path) -> None:
    out = export_feedforward(models[kind], tmp_path / f"{kind}.onnx")
    meta = read_meta(out)
    names = list(stylizer_for(models[kind]).style_names)
    assert meta["style_names"] == names and meta["pad_multiple"] == 4
    styles = [(names[0], 0.3), (names[-1], 0.7)]
    onnx_model = OnnxFeedForward(out)
    torch_model = stylizer_for(models[kind], precision="fp32")
    for size in (131, 97):  # odd sizes: dynamic height/width and the padding path
        a = torch_model.stylize(photo, styles, size=size).image
        b = onnx_model.stylize(photo, styles, size=size).image
        assert a.size == b.size
        assert _diff(a, b).max() <= 1.0  # at most one 8-bit level of rounding


def test_adain_export_matches_torch_with_blends_and_masks(photo, tmp_path) -> None:
    torch.manual_seed(0)
    dec = tmp_path / "dec"
    AdaINDecoder(DecoderConfig(widths=(8, 8, 8, 8), convs_per_stage=(1, 1, 1, 1))).save_pretrained(dec)
    main_file, enc_file = export_adain(tmp_path / "adain.onnx", decoder=dec)
    assert enc_file.name == "adain.encoder.onnx" and read_meta(main_file)["kind"] == "adain"
    ref, ort = AdaINStylizer(decoder=dec, precision="fp32"), OnnxAdaIN(main_file)
    left = Image.new("L", (120, 90), 0)
    left.paste(255, (0, 0, 60, 90))
    for kwargs in ({"strength": 0.7}, {"weights": [0.3, 0.7]}, {"masks": [left, None]}):
        a = ref.stylize(photo, ["starry_night", "the_scream"][: 1 if "strength" in kwargs else 2], size=120,
                        **kwargs).image
        b = ort.stylize(photo, ["starry_night", "the_scream"][: 1 if "strength" in kwargs else 2], size=120,
                        **kwargs).image
        assert _diff(a, b).max() <= 2.0, kwargs


def test_static_int8_is_close_and_smaller(models, media_files, photo, tmp_path) -> None:
    src = export_feedforward(models["cin"], tmp_path / "cin.onnx")
    photos = sorted(media_files.photos.glob("*.jpg"))[:3]
    dst = quantize(src, tmp_path / "cin_int8.onnx", mode="static", photos=photos, size=96)
    assert read_meta(dst)["style_names"] == ["waves", "stars"]  # the stylizer can still name styles
    assert dst.stat().st_size < src.stat().st_size
    a = OnnxFeedForward(src).stylize(photo, "stars", size=96).image
    b = OnnxFeedForward(dst).stylize(photo, "stars", size=96).image
    assert 0 < _diff(a, b).mean() < 12  # quantized (not a copy), yet within a few 8-bit levels on average
    dyn = quantize(src, tmp_path / "cin_dyn.onnx", mode="dynamic")
    assert _diff(a, OnnxFeedForward(dyn).stylize(photo, "stars", size=96).image).mean() < 12
    for path in (dst, dyn):  # 7-bit weights: AVX2's int16 pair sums of uint8 x int8 products cannot saturate
        weights = [numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer if i.data_type == 3]
        assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) == 64
    graph = onnx.load(str(dst)).graph  # the RGB output convolution stays in float (no full-resolution im2col)
    floats = {i.name: i.dims for i in graph.initializer if i.data_type == 1}
    assert [floats[n.input[1]][0] for n in graph.node if n.op_type == "Conv" and n.input[1] in floats] == [3]
    tail = quantize(src, tmp_path / "cin_tail.onnx", photos=photos, size=96, float_last=2)  # the last two in float
    graph = onnx.load(str(tail)).graph
    floats = {i.name for i in graph.initializer if i.data_type == 1}
    assert [n.input[1] in floats for n in graph.node if n.op_type == "Conv"][-3:] == [False, True, True]
    assert _diff(a, OnnxFeedForward(tail).stylize(photo, "stars", size=96).image).mean() < _diff(a, b).mean()
    with pytest.raises(ConfigError, match="in float must be >= 0"):
        quantize(src, tmp_path / "x.onnx", photos=photos, size=96, float_last=-1)


def test_static_int8_pads_on_uint8_with_the_same_numbers(models, media_files, photo, tmp_path,
                                                          monkeypatch) -> None:
    """The reflection pads (and the upsampling) run after the quantization, not before: same outputs."""
    import onnx

    import brushwork.export.quantize as q
    from brushwork.export.graph import MOVERS

    src = export_feedforward(models["subpixel"], tmp_path / "sub.onnx")
    photos = sorted(media_files.photos.glob("*.jpg"))[:2]
    hoisted = quantize(src, tmp_path / "hoisted.onnx", photos=photos, size=64)
    graph = onnx.load(str(hoisted)).graph
    producer = {o: n for n in graph.node for o in n.output}

    def quantized(name: str) -> bool:  # made by a QuantizeLinear, maybe through value-moving ops
        node = producer.get(name)
        return node is not None and (node.op_type == "QuantizeLinear"
                                     or (node.op_type in MOVERS and quantized(node.input[0])))

    pads = [n for n in graph.node if n.op_type == "Pad"]
    assert pads and all(quantized(n.input[0]) for n in pads)
    # the pixel unshuffle is onnxruntime's SpaceToDepth, not the exporter's slow 6-d transpose
    assert [n.op_type for n in graph.node].count("SpaceToDepth") == 1
    assert not [n for n in graph.node if n.op_type == "Transpose" and len(n.attribute[0].ints) == 6]
    monkeypatch.setattr(q, "hoist_quantize", lambda model: 0)
    plain = quantize(src, tmp_path / "plain.onnx", photos=photos, size=64)
    a = OnnxFeedForward(plain).stylize(photo, "stars", size=80).image
    b = OnnxFeedForward(hoisted).stylize(photo, "stars", size=80).image
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_not_an_export_is_one_line(tmp_path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        OnnxFeedForward(bad)


def test_cli_export_quantize_and_run(models, media_files, tmp_path, capsys) -> None:
    out = tmp_path / "cin.onnx"
    assert main(["export", "onnx", "--model", str(models["cin"]), "-o", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == [str(out)]
    q = tmp_path / "cin_int8.onnx"
    assert main(["export", "quantize", str(out), "-o", str(q), "--calibrate", str(media_files.photos),
                 "--max-photos", "2", "--size", "64"]) == 0
    png = tmp_path / "o.png"
    assert main(["stylize", str(media_files.photo), "--model", str(q), "-s", "waves:0.5,stars:0.5",
                 "-o", str(png), "--size", "64"]) == 0
    assert Image.open(png).size == (64, 48)
    capsys.readouterr()
    assert main(["export", "quantize", str(out), "-o", str(tmp_path / "x.onnx")]) == 2  # static needs photos
    assert main(["export", "onnx", "--model", str(models["cin"]), "-o", str(tmp_path / "x.pt")]) == 2
    assert main(["export", "onnx", "--model", "starry_nite", "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("brushwork: error:") for line in err)


def test_engine_onnx_matches_torch_for_a_model_folder(models, media_files, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path / "home"))  # the export cache
    photo_path = str(media_files.photo)
    outs = {}
    for engine in ("torch", "onnx"):
        outs[engine] = tmp_path / f"{engine}.png"
        assert main(["stylize", photo_path, "--model", str(models["cin"]), "-s", "stars", "--engine", engine,
                     "--precision", "fp32", "-o", str(outs[engine]), "--size", "80"]) == 0
    assert _diff(Image.open(outs["torch"]), Image.open(outs["onnx"])).max() <= 1.0
    assert list((tmp_path / "home" / "onnx").glob("ff-*.onnx"))  # exported once, cached for the next run


def test_engine_int8_runs_the_shipped_cin_export_and_refuses_elsewhere(models, media_files, tmp_path,
                                                                        capsys) -> None:
    photo_path = str(media_files.photo)
    out = tmp_path / "int8.png"
    assert main(["stylize", photo_path, "--model", "starry_night", "--engine", "int8", "-o", str(out),
                 "--size", "96"]) == 0
    assert max(Image.open(out).size) == 96
    capsys.readouterr()
    for extra, match in ((["--model", str(models["cin"]), "-s", "stars"], "no INT8 export ships with cin"),
                         (["-s", str(media_files.painting2), "--method", "adain"], "no INT8 AdaIN")):
        assert main(["stylize", photo_path, *extra, "--engine", "int8", "-o", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0], err
    # the default for any painting (ghiasi) ships its INT8 transformer
    assert main(["stylize", photo_path, "-s", str(media_files.painting2), "--engine", "int8", "--size", "96",
                 "-o", str(tmp_path / "g.png")]) == 0


def test_narrow_convolutions_are_padded_to_a_channel_block_with_the_same_numbers(models, media_files, photo,
                                                                                tmp_path, monkeypatch) -> None:
    """The sub-pixel net's 12-output layer (and the tiny net's 6- and 8-wide ones) get zero filters up to 16 and a
    Slice back: the fp32 export within float rounding, the INT8 one bit for bit."""
    import brushwork.export.onnx as ex
    import brushwork.export.quantize as q
    from brushwork.export.graph import CHANNEL_BLOCK

    def conv_outputs(path: Path) -> list[int]:
        graph = onnx.load(str(path)).graph
        inits = {t.name: t for t in graph.initializer}
        producer = {o: n for n in graph.node for o in n.output}
        out = []
        for n in graph.node:
            if n.op_type == "Conv":
                w = inits.get(n.input[1]) or inits[producer[n.input[1]].input[0]]
                out.append(w.dims[0])
        return out

    padded = export_feedforward(models["subpixel"], tmp_path / "padded.onnx")
    assert set(conv_outputs(padded)) == {CHANNEL_BLOCK}
    assert [n.op_type for n in onnx.load(str(padded)).graph.node].count("Slice") == len(conv_outputs(padded))
    monkeypatch.setattr(ex, "pad_conv_outputs", lambda model: 0)
    plain = export_feedforward(models["subpixel"], tmp_path / "plain.onnx")
    assert 12 in conv_outputs(plain)
    a = OnnxFeedForward(plain).stylize(photo, "stars", size=80).image
    b = OnnxFeedForward(padded).stylize(photo, "stars", size=80).image
    assert _diff(a, b).max() <= 1.0
    photos = sorted(media_files.photos.glob("*.jpg"))[:2]
    int8 = quantize(plain, tmp_path / "int8.onnx", photos=photos, size=64)
    assert set(conv_outputs(int8)) == {CHANNEL_BLOCK}
    monkeypatch.setattr(q, "pad_conv_outputs", lambda model: 0)
    int8_plain = quantize(plain, tmp_path / "int8_plain.onnx", photos=photos, size=64)
    a = OnnxFeedForward(int8_plain).stylize(photo, "stars", size=80).image
    b = OnnxFeedForward(int8).stylize(photo, "stars", size=80).image
    assert np.array_equal(np.asarray(a), np.asarray(b))
