"""``brushwork train johnson|cin``: real (tiny) runs on generated images, resume, outputs and errors."""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli.main import build_parser, main
from brushwork.errors import ConfigError, ImageError
from brushwork.methods.feedforward import FeedForwardStylizer, TransformerNet
from brushwork.training.feedforward import FeedForwardTrainConfig, train_feedforward


def _image(path: Path, seed: int, size=(96, 80)) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("train")
    (root / "content").mkdir()
    for i in range(4):
        _image(root / "content" / f"img_{i}.png", i)
    styles = [_image(root / "waves.png", 10, (72, 96)), _image(root / "dots.jpg", 11)]
    return root / "content", styles


def _cfg(data, out: Path, steps: int, styles: list[Path] | None = None) -> FeedForwardTrainConfig:
    return FeedForwardTrainConfig(content=[str(data[0])], styles=[str(s) for s in (styles or data[1])],
                                  out_dir=str(out), steps=steps, batch=2, crop=64, style_size=64, checkpoint_every=2,
                                  log_every=1, widths=(4, 8, 8), n_residual=1, precision="fp32")


def test_cin_train_then_resume_matches_an_unbroken_run(data, tmp_path):
    model = train_feedforward(_cfg(data, tmp_path / "a", 4))
    assert (model / "model.safetensors").is_file() and (tmp_path / "a" / "losses.png").is_file()
    meta = json.loads((model / "training.json").read_text())
    assert meta["steps"] == 4 and meta["final"]["step"] == 4 and meta["kind"] == "cin"
    assert meta["style_names"] == ["waves", "dots"] and meta["content_layer"] == "relu2_2"
    # the same run "killed" after its step-2 checkpoint, then resumed to step 4
    train_feedforward(_cfg(data, tmp_path / "b", 2))
    train_feedforward(_cfg(data, tmp_path / "b", 4))
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    a, b = TransformerNet.from_pretrained(model), TransformerNet.from_pretrained(tmp_path / "b" / "model")
    assert a.style_names == ("waves", "dots") and a.config.kind == "cin"
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-3), k
    # same batches, same styles, same losses after the resume; the float32 checkpoints agree to rounding
    log_a = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    for ra, rb in zip(log_a, log):
        assert ra["style_index"] == rb["style_index"]
        assert ra["total"] == pytest.approx(rb["total"], rel=1e-5)
    ca, cb = (torch.load(tmp_path / r / "checkpoint.pt", weights_only=True)["net"] for r in "ab")
    for k in ca:
        assert torch.allclose(ca[k], cb[k], atol=1e-6), k
    # the batches' styles: their own gamma/beta rows learned, so the two styles already differ
    x = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(a(x, torch.tensor([[1.0, 0.0]])), a(x, torch.tensor([[0.0, 1.0]])))


def test_johnson_run_gives_a_usable_model(data, tmp_path):
    model = train_feedforward(_cfg(data, tmp_path / "j", 2, styles=data[1][:1]))
    meta = json.loads((model / "config.json").read_text())
    assert meta["kind"] == "johnson" and meta["style_names"] == ["waves"]
    assert meta["training"]["final"]["step"] == 2 and "style_index" not in meta["training"]["final"]
    res = FeedForwardStylizer(model, precision="fp32").stylize(_image(tmp_path / "p.png", 5, (50, 37)))
    assert res.image.size == (50, 37) and res.styles == {"waves": 1.0}


def test_errors(data, tmp_path):
    with pytest.raises(ConfigError, match="multiple of 4"):
        train_feedforward(FeedForwardTrainConfig(content=[str(data[0])], styles=[str(data[1][0])],
                                                 out_dir=str(tmp_path), crop=66))
    with pytest.raises(ConfigError, match="at least 64"):
        train_feedforward(replace(_cfg(data, tmp_path, 2), crop=60))
    with pytest.raises(ConfigError, match="steps >= 1"):
        train_feedforward(FeedForwardTrainConfig(content=[str(data[0])], styles=[str(data[1][0])],
                                                 out_dir=str(tmp_path), steps=0))
    with pytest.raises(ConfigError, match="at least one style"):
        train_feedforward(replace(_cfg(data, tmp_path, 2), styles=[]))
    with pytest.raises(ConfigError, match="style-weight"):
        train_feedforward(replace(_cfg(data, tmp_path, 2), style_weight=float("nan")))
    with pytest.raises(ImageError, match="style image not found") as info:
        train_feedforward(_cfg(data, tmp_path / "x", 2, styles=[tmp_path / "missing.jpg"]))
    assert "\n" not in str(info.value)
    (tmp_path / "other").mkdir()
    twin = _image(tmp_path / "other" / "waves.png", 3)
    with pytest.raises(ConfigError, match="two styles are named 'waves'"):
        train_feedforward(_cfg(data, tmp_path / "x", 2, styles=[data[1][0], twin]))
    # a run folder holding another net's checkpoint is not silently reused
    train_feedforward(_cfg(data, tmp_path / "run", 2, styles=data[1][:1]))
    with pytest.raises(ConfigError, match="another net"):
        train_feedforward(_cfg(data, tmp_path / "run", 4))


def test_cli_train_johnson_empty_folder_is_one_line(capsys, data, tmp_path):
    (tmp_path / "empty").mkdir()
    code = main(["train", "johnson", "--style", str(data[1][0]), "--content", str(tmp_path / "empty"),
                 "-o", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no images" in err


@pytest.mark.parametrize(("method", "n", "match"), [("johnson", 2, "train cin"), ("cin", 1, "train johnson")])
def test_cli_style_count_per_method(capsys, data, tmp_path, method: str, n: int, match: str):
    styles = [a for s in data[1][:n] for a in ("--style", str(s))]
    code = main(["train", method, *styles, "--content", str(data[0]), "-o", str(tmp_path / "run"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and match in err
    assert not (tmp_path / "run").exists()


def test_cli_defaults_match_the_config_and_adain_still_parses():
    defaults = {f.name: f.default for f in fields(FeedForwardTrainConfig)}
    args = build_parser().parse_args(["train", "cin", "--style", "a.jpg", "--style", "b.jpg", "--content", "c",
                                      "-o", "o"])
    assert args.train_method == "cin" and args.style == ["a.jpg", "b.jpg"]
    for name in ("steps", "batch", "crop", "lr", "lr_decay", "style_weight", "tv_weight", "saturation_weight",
                 "style_size"):
        assert getattr(args, name) == defaults[name], name
    assert args.widths == defaults["widths"] and args.residual == defaults["n_residual"]
    assert args.end_kernel == defaults["end_kernel"]
    slim = build_parser().parse_args(["train", "cin", "--style", "a", "--style", "b", "--content", "c", "-o", "o",
                                      "--widths", "16,32,64", "--residual", "3"])
    assert slim.widths == (16, 32, 64) and slim.residual == 3
    ad = build_parser().parse_args(["train", "adain", "--content", "c", "--styles", "s", "-o", "o"])
    assert ad.train_method == "adain" and ad.style_weight == 20.0 and ad.crop == 256 and ad.lr == 1e-4


@pytest.mark.parametrize("bad", ["16,32", "a,b,c", "0,8,8"])
def test_cli_bad_widths_are_a_usage_error(capsys, bad: str):
    code = main(["train", "cin", "--style", "a", "--style", "b", "--content", "c", "-o", "o", "--widths", bad])
    assert code == 2 and "--widths" in capsys.readouterr().err
